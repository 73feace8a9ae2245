"""Run a call (a Lava run) in a forked child with a timeout; clean up its whole process group.

Lava's runtime starts its own processes; if a run hangs, killing only our child would leave
them behind. The child therefore leads a new process group, and on timeout — or after it
exits — the whole group gets ``SIGKILL``.
"""
from __future__ import annotations

import os
import pickle
import select
import signal
import time
from typing import Any, Callable

from neurohw.errors import UsageError, is_user_error


class LavaTimeout(RuntimeError):
    """The isolated call did not finish within its timeout (its processes were killed)."""


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def call_isolated(fn: Callable[..., Any], *args, timeout_s: float, what: str = "Lava run", **kwargs) -> Any:
    """``fn(*args, **kwargs)`` in a forked child in its own process group; returns its result.

    The result (or the exception) comes back pickled over a pipe — only from our own child.
    After ``timeout_s`` seconds the process group is killed and :class:`LavaTimeout` raised.
    """
    if timeout_s <= 0:
        raise UsageError("--timeout", f"must be > 0 seconds, got {timeout_s}")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            os.setpgid(0, 0)
            try:
                payload = pickle.dumps(("ok", fn(*args, **kwargs)))
            except BaseException as exc:  # noqa: BLE001 - sent to the parent
                try:
                    payload = pickle.dumps(("err", exc))
                    pickle.loads(payload)
                except Exception:  # an exception class that does not round-trip
                    payload = pickle.dumps(("msg", is_user_error(exc), f"{type(exc).__name__}: {exc}"))
            with os.fdopen(w, "wb") as fh:
                fh.write(payload)
        finally:
            os._exit(0)
    os.close(w)
    try:
        os.setpgid(pid, pid)
    except (PermissionError, ProcessLookupError):
        pass  # the child already did it (or has exited)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                _kill_group(pid)
                raise LavaTimeout(f"{what} did not finish within {timeout_s:g} s; its processes were killed")
            ready, _, _ = select.select([r], [], [], min(left, 1.0))
            if ready:
                data = os.read(r, 1 << 20)
                if not data:
                    break
                chunks.append(data)
    finally:
        os.close(r)
        _kill_group(pid)  # stragglers of a finished run, too
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    if not chunks:
        raise RuntimeError(f"{what}: the child process died without a result")
    kind, *rest = pickle.loads(b"".join(chunks))
    if kind == "ok":
        return rest[0]
    if kind == "err":
        raise rest[0]
    user, text = rest
    raise (UsageError(what, text) if user else RuntimeError(f"{what}: {text}"))
