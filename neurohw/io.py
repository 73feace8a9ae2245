"""Safe, reproducible file IO: atomic writes, safetensors checkpoints with a JSON sidecar.

Nothing read from outside is ever unpickled: checkpoints are safetensors (tensors only) and
the sidecar is JSON. Every write goes to a temporary file in the destination folder first
and is renamed into place, so an interrupted or failing write never destroys a file that
was already there.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from safetensors.torch import load_file, save_file


class CheckpointError(ValueError):
    """A checkpoint or its sidecar is missing, malformed or does not match the model."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    If the block raises, the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    try:  # mkstemp makes 0600; a finished file gets the mode open() would give it (0666 less the umask)
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # a writer may have replaced the temporary file (safetensors does: 0600 again); the
        # finished file always gets the user's umask
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_writable(path: str | os.PathLike, kind: str = "file", where: str | None = None) -> Path:
    """Fail now, before any work, if ``path`` cannot be written later.

    ``kind`` is ``"file"`` (``path`` is a file to create or replace), ``"dir"`` (a folder
    to create or write into) or ``"any"`` (either). The nearest existing ancestor must be a writable folder; an
    existing ``path`` must be of the right kind. Raises :class:`~neurohw.errors.UsageError`
    naming ``where`` (default: the path).
    """
    from neurohw.errors import UsageError

    path = Path(path)
    where = where or str(path)
    if path.exists():
        if kind == "file" and path.is_dir():
            raise UsageError(where, f"{path} is a folder, expected a file name")
        if kind == "dir" and not path.is_dir():
            raise UsageError(where, f"{path} exists and is not a folder")
        target = path if (kind == "dir" or (kind == "any" and path.is_dir())) else path.parent
        if not os.access(target, os.W_OK | os.X_OK) or not _can_create_in(target):
            raise UsageError(where, f"folder {target} is not writable")
        return path
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(where, f"{parent} is not a folder, so {path} cannot be created")
    if not os.access(parent, os.W_OK | os.X_OK) or not _can_create_in(parent):
        raise UsageError(where, f"folder {parent} is not writable, so {path} cannot be created")
    return path


def _can_create_in(folder: Path) -> bool:
    """True when a file can really be created in ``folder`` (``os.access`` says yes to root
    on a read-only file system): creates and removes an anonymous temp file."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, (Path,)):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def git_commit() -> str | None:
    """The current git commit of the neurohw checkout, or None outside a checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance(seed: int | None = None, config: Mapping[str, Any] | None = None) -> dict:
    """What every result file records: seed, configuration, versions, git commit, time."""
    import numpy

    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__}
    try:
        from neurohw import __version__

        versions["neurohw"] = __version__
    except ImportError:  # pragma: no cover
        pass
    return {
        "seed": seed,
        "config": dict(config or {}),
        "versions": versions,
        "git_commit": git_commit(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": redacted_argv(),
    }


#: Options whose value is hidden and must never be written into a file (the virtual lab's
#: fabrication seed stands for a device the experimenter cannot see into).
SECRET_OPTIONS = ("--device-seed",)


def redacted_argv(argv: list[str] | None = None) -> list[str]:
    """``sys.argv`` with the value of every :data:`SECRET_OPTIONS` option replaced by ``<hidden>``.

    Handles ``--opt VALUE``, ``--opt=VALUE`` and unambiguous prefixes (``--device-s 7``).
    """
    argv = list(sys.argv if argv is None else argv)
    out: list[str] = []
    hide_next = False
    for item in argv:
        if hide_next:
            out.append("<hidden>")
            hide_next = False
            continue
        name, eq, _ = item.partition("=")
        secret = len(name) > 3 and name.startswith("--") and any(opt.startswith(name) for opt in SECRET_OPTIONS)
        if secret and eq:
            out.append(f"{name}=<hidden>")
        elif secret:
            out.append(item)
            hide_next = True
        else:
            out.append(item)
    return out


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar that goes with a safetensors checkpoint: ``model.safetensors`` → ``model.json``.

    Never the checkpoint itself: weights named ``model.json`` get ``model.json.sidecar.json``.
    """
    p = Path(path)
    side = p.with_suffix(".json")
    return p.with_name(p.name + ".sidecar.json") if side == p else side


def save_checkpoint(
    path: str | os.PathLike,
    tensors: Mapping[str, torch.Tensor] | torch.nn.Module,
    *,
    config: Mapping[str, Any] | None = None,
    seed: int | None = None,
    extra: Mapping[str, Any] | None = None,
    kind: str | None = None,
) -> Path:
    """Save tensors (or a module's ``state_dict``) as safetensors plus a JSON sidecar.

    The sidecar holds ``config``, ``seed``, package versions, the git commit and ``extra``
    (e.g. epoch, optimiser step, metrics) and, for an artifact, its ``kind`` and
    ``version`` (see :func:`load_artifact`). Both files are written atomically.
    """
    if isinstance(tensors, torch.nn.Module):
        tensors = tensors.state_dict()
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    # safetensors refuses tensors that share storage; clone those.
    seen: dict[int, str] = {}
    for k, v in flat.items():
        ptr = v.untyped_storage().data_ptr() if v.numel() else None
        if ptr is not None and ptr in seen:
            flat[k] = v.clone()
        elif ptr is not None:
            seen[ptr] = k
    path = Path(path)
    bad = nonfinite_tensors(flat)
    if bad:
        raise CheckpointError(f"{path}: refusing to write a checkpoint with NaN/Inf values in {bad[:5]} "
                              f"(a diverged or broken run); {'the existing file is kept' if path.exists() else 'nothing written'}")
    meta = provenance(seed=seed, config=config)
    if kind is not None:
        meta["kind"], meta["version"] = kind, ARTIFACT_VERSION
    meta["extra"] = dict(extra or {})
    meta["tensors"] = {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in flat.items()}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(flat, str(tmp), metadata={"format": "pt", "neurohw": "1"})
    atomic_write_json(sidecar_path(path), meta)
    return path


def nonfinite_tensors(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors that hold NaN or ±Inf."""
    return [k for k, v in tensors.items() if v.is_floating_point() and v.numel() and not bool(torch.isfinite(v).all())]


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu",
                    allow_nonfinite: bool = False) -> tuple[dict[str, torch.Tensor], dict]:
    """Load a safetensors checkpoint and its JSON sidecar (``{}`` when there is none).

    Raises :class:`CheckpointError` naming the file when it is missing or unreadable, or
    (unless ``allow_nonfinite``) when a floating-point tensor holds NaN/Inf.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    try:
        tensors = load_file(str(path), device=str(device))
    except Exception as exc:  # safetensors raises several error types for corrupt headers
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    bad = [] if allow_nonfinite else nonfinite_tensors(tensors)
    if bad:
        raise CheckpointError(f"{path}: NaN/Inf values in tensor(s) {bad[:5]}; refusing to use these weights")
    meta: dict = {}
    side = sidecar_path(path)
    if side.exists():
        meta = read_sidecar(side)
    return tensors, meta


def read_json_object(path: str | os.PathLike, error: type[Exception], what: str = "") -> dict:
    """The JSON object stored in ``path`` (UTF-8). A file that is not valid JSON, or whose top
    level is not an object, raises ``error(message)``; the message names the file and ``what``
    it is (``"x.json: sidecar is not valid JSON (…)"``, ``"x.json: not valid JSON (…)"``)."""
    path = Path(path)
    label = f"{what} is " if what else ""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: {label}not valid JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise error(f"{path}: {what or 'top level'} must be a JSON object, got {type(obj).__name__}")
    return obj


def read_sidecar(side: str | os.PathLike) -> dict:
    """A checkpoint's JSON sidecar: a JSON object, else :class:`CheckpointError` naming the file."""
    side = Path(side)
    meta = read_json_object(side, CheckpointError, "sidecar")
    for key in ("config", "extra"):
        if key in meta and meta[key] is not None and not isinstance(meta[key], dict):
            raise CheckpointError(f"{side}: field '{key}' must be a JSON object, got {meta[key]!r:.60}")
    if "kind" in meta and not isinstance(meta["kind"], str):
        raise CheckpointError(f"{side}: field 'kind' must be a string, got {meta['kind']!r:.60}")
    return meta


def load_into(module: torch.nn.Module, path: str | os.PathLike, strict: bool = True) -> dict:
    """Load a checkpoint into ``module``; returns the sidecar. Mismatches raise CheckpointError."""
    tensors, meta = load_checkpoint(path)
    try:
        module.load_state_dict(tensors, strict=strict)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: does not match {type(module).__name__}: {exc}") from exc
    return meta


# ---------------------------------------------------------------- artifacts: the hand-off between steps
#: Version of the artifact sidecar convention (``kind`` + ``version`` at the sidecar's top level).
ARTIFACT_VERSION = 1

#: kind → (saver, loader) as ``"module:function"``. ``saver(path, obj, **kw) -> Path`` writes
#: through :func:`save_checkpoint` with ``kind=``; ``loader(path) -> obj`` rebuilds the object
#: (nothing is unpickled). A module is imported only when its kind is saved or loaded.
ARTIFACT_KINDS: dict[str, tuple[str, str]] = {
    "teacher": ("neurohw.models:save_teacher", "neurohw.models:load_teacher"),
    "bwsnn": ("snn.experiments:save_model", "snn.experiments:load_model"),
    "logic-net": ("logic.backend:save_net", "logic.models:load_model"),
    "optics-design": ("optics.pipeline:save_design", "optics.pipeline:load_design"),
    "optical-hardware": ("optics.hardware:save_hardware", "optics.hardware:load_hardware"),
}

#: The file a folder artifact is read from, by kind, in order of preference.
FOLDER_FILES: tuple[str, ...] = ("hardware.safetensors", "calibrated.safetensors", "model.safetensors", "design.safetensors")


def _resolve(spec: str):
    import importlib

    mod, fn = spec.split(":")
    return getattr(importlib.import_module(mod), fn)


def _legacy_kind(meta: dict) -> str | None:
    """The kind of a file written before sidecars carried one (recognised by its config)."""
    conf, extra = meta.get("config") or {}, meta.get("extra") or {}
    if extra.get("format") == "neurohw-optical-hybrid":
        return "optical-hardware"
    if "bwsnn" in conf:
        return "bwsnn"
    if "logic_model" in conf:
        return "logic-net"
    if "proxy" in conf and ("optics" in conf or "config" in conf):
        return "optics-design"
    from neurohw.models import TEACHERS

    if conf.get("model") in TEACHERS or conf.get("name") in TEACHERS:
        return "teacher"
    return None


def artifact_file(path: str | os.PathLike, kinds: tuple[str, ...] | None = None) -> Path:
    """The artifact file ``path`` names: the file itself, or in a folder the first of
    :data:`FOLDER_FILES` present (and, with ``kinds``, of one of those kinds)."""
    path = Path(path)
    if not path.is_dir():
        return path
    for name in FOLDER_FILES:
        f = path / name
        if f.exists() and (kinds is None or artifact_kind(f) in kinds):
            return f
    want = f" of kind {', '.join(kinds)}" if kinds else ""
    raise CheckpointError(f"{path}: folder holds no artifact{want} (looked for {', '.join(FOLDER_FILES)})")


def artifact_kind(path: str | os.PathLike) -> str | None:
    """The ``kind`` recorded in (or recognised from) the sidecar of ``path``; None when unknown."""
    if not Path(path).exists():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    side = sidecar_path(path)
    if not side.exists():
        raise CheckpointError(f"{side}: sidecar does not exist (an artifact is a .safetensors file with a .json sidecar)")
    meta = read_sidecar(side)
    if "kind" in meta:
        if meta.get("version") != ARTIFACT_VERSION:
            raise CheckpointError(f"{side}: artifact version {meta.get('version')!r} is not {ARTIFACT_VERSION}")
        return meta["kind"]
    return _legacy_kind(meta)


def save_artifact(obj: Any, path: str | os.PathLike, kind: str | None = None, **kw) -> Path:
    """Write ``obj`` (teacher, BWSNN, logic net, optical design, optical hardware / calibrated
    device) as safetensors + JSON sidecar with ``kind``, ``version``, config and provenance.

    ``kind`` defaults to ``obj.artifact_kind`` (a class attribute of the saveable types);
    ``kw`` go to the kind's saver (e.g. ``extra=``, ``seed=``).
    """
    kind = kind or getattr(obj, "artifact_kind", None)
    if kind not in ARTIFACT_KINDS:
        raise CheckpointError(f"{path}: cannot save a {type(obj).__name__} as an artifact "
                              f"(kind {kind!r}; known: {', '.join(ARTIFACT_KINDS)})")
    path = Path(_resolve(ARTIFACT_KINDS[kind][0])(path, obj, **kw))
    side = sidecar_path(path)
    meta = json.loads(side.read_text(encoding="utf-8"))
    if meta.get("kind") != kind:  # a saver that does not stamp its files: stamp the sidecar here
        meta["kind"], meta["version"] = kind, ARTIFACT_VERSION
        atomic_write_json(side, meta)
    return path


def load_artifact(path: str | os.PathLike, kinds: tuple[str, ...] | None = None) -> Any:
    """Rebuild the object saved at ``path`` (a file, or a folder holding one of :data:`FOLDER_FILES`).

    ``kinds`` restricts what is accepted; a file of another kind raises :class:`CheckpointError`
    naming the file and both kinds.
    """
    f = artifact_file(path, kinds)
    if not f.exists():
        raise CheckpointError(f"{f}: artifact file does not exist")
    kind = artifact_kind(f)
    if kind not in ARTIFACT_KINDS:
        raise CheckpointError(f"{f}: unknown artifact kind {kind!r} (known: {', '.join(ARTIFACT_KINDS)})")
    if kinds is not None and kind not in kinds:
        raise CheckpointError(f"{f}: is a {kind!r} artifact, expected {' or '.join(repr(k) for k in kinds)}")
    try:
        return _resolve(ARTIFACT_KINDS[kind][1])(f)
    except (KeyError, TypeError, AttributeError, IndexError, RuntimeError) as exc:
        # a loader met a sidecar field or tensor of the wrong type or shape: name the file, not a traceback
        raise CheckpointError(f"{f}: not a valid {kind!r} artifact ({type(exc).__name__}: {exc}); "
                              f"see its sidecar {sidecar_path(f).name}") from exc
