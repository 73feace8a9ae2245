"""One interface for every hardware backend (Loihi, optics, logic) and the registry that lists them.

A backend turns a trained, hardware-constrained *student* (a ``torch.nn.Module``) into the
exact or physical model of what the device computes, and offers the same four faces:

1. ``harden(student, **options) -> HardwareModel`` — train-time module → hardware model;
2. ``HardwareModel.predict(x) -> Tensor (N, classes)`` — the exact face: logits or class
   counts, argmax = the device's decision (Loihi: integer simulation; optics: a fabricated
   or nominal device with its sensor; logic: the packed netlist);
3. ``export(hw, path, format) -> Path`` — the file the hardware toolchain consumes
   (``formats`` lists what a backend writes);
4. ``report(hw, x=None) -> Report`` — resources, deployability, energy/latency, each constant
   with its source; ``.to_markdown()``, ``.to_json()``, ``.save(folder)`` (plots included).

Backends register under a name (``register``); :func:`backends` imports the built-in adapters
listed in :data:`BUILTIN` (``neurohw/loihi/backend.py``, ``optics/backend.py``,
``logic/backend.py``) — an adapter whose package is absent from the checkout is skipped. Each
backend also names the command-line modules and demo stages of its package, so the CLI and the
demo discover them through the registry instead of keeping their own lists.
"""
from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import torch


class BackendError(ValueError):
    """A backend was asked for something it does not offer (unknown backend, format or student)."""


@runtime_checkable
class HardwareModel(Protocol):
    """What :meth:`Backend.harden` returns: the device's exact or physical model.

    ``backend``: the registry name; ``predict(x)``: inputs (N, ...) as the student takes them →
    (N, classes) tensor whose argmax is the device's decision.
    """

    backend: str

    def predict(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class Constant:
    """A hardware constant with its unit and its source (paper, datasheet, measurement, assumption)."""

    value: float | None
    unit: str
    source: str


@dataclass
class Report:
    """A backend report: ``figures`` (JSON-able numbers and tables), the constants they use,
    notes, and plot functions ``plots[name](path) -> None`` that write a PNG to ``path``.

    ``summary`` is a list of ``(label, value)`` rows shown first in the Markdown.
    """

    backend: str
    title: str
    summary: list[tuple[str, str]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    constants: dict[str, Constant] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    tables: dict[str, list[dict]] = field(default_factory=dict)
    plots: dict[str, Callable[[Path], None]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "backend": self.backend,
            "title": self.title,
            "summary": {k: v for k, v in self.summary},
            "figures": self.figures,
            "tables": self.tables,
            "constants": {k: {"value": c.value, "unit": c.unit, "source": c.source} for k, c in self.constants.items()},
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        """The report as indented JSON text (numpy values converted)."""
        from neurohw.io import _json_default

        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=_json_default) + "\n"

    def to_markdown(self) -> str:
        """The report as Markdown: summary table, one table per ``tables`` entry, constants, notes."""
        lines = [f"# {self.title}", "", "| figure | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in self.summary]
        for name, rows in self.tables.items():
            if not rows:
                continue
            cols = list(rows[0])
            lines += ["", f"## {name}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            lines += ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for r in rows]
        if self.constants:
            lines += ["", "## Constants", "", "| constant | value | unit | source |", "|---|---|---|---|"]
            for k, c in self.constants.items():
                lines.append(f"| {k} | {'—' if c.value is None else f'{c.value:.4g}'} | {c.unit} | {c.source} |")
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        if self.plots:
            lines += [""] + [f"![{name}]({name}.png)" for name in self.plots]
        return "\n".join(lines) + "\n"

    def save(self, folder: str | Path) -> dict[str, Path]:
        """Write ``report.md``, ``report.json`` and one PNG per plot into ``folder``.

        The text files are written atomically; each plot function writes through
        :func:`neurohw.plotting.save` (atomic as well).
        """
        from neurohw.io import atomic_write_text

        folder = Path(folder)
        paths = {"markdown": atomic_write_text(folder / "report.md", self.to_markdown()),
                 "json": atomic_write_text(folder / "report.json", self.to_json())}
        for name, plot in self.plots.items():
            paths[name] = folder / f"{name}.png"
            plot(paths[name])
        return paths


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


class Backend(ABC):
    """A hardware backend's four faces. Subclasses set the class attributes and implement the methods.

    ``name``: registry key; ``formats``: what :meth:`export` writes; ``student``: what
    :meth:`harden` takes (one line, for ``--help`` and docs); ``cli_modules``: modules with a
    ``register(subparsers)`` function that add this backend's subcommands; ``demo_stages``:
    ``(stage name, "module:function")`` pairs for ``neurohw demo``; ``students``: names of
    the freshly initialised students :meth:`build_student` makes (for ``distill``).
    """

    name: str = ""
    formats: tuple[str, ...] = ()
    student: str = ""
    cli_modules: tuple[str, ...] = ()
    demo_stages: tuple[tuple[str, str], ...] = ()
    students: tuple[str, ...] = ()

    def build_student(self, name: str, num_classes: int = 10, input_shape: tuple[int, ...] = (1, 28, 28)) -> torch.nn.Module:
        """A freshly initialised student ``name`` (one of :attr:`students`): (N, *input_shape) → (N, num_classes) logits."""
        raise BackendError(f"backend {self.name!r} builds no student {name!r}; it builds: {', '.join(self.students) or 'none'}")

    @abstractmethod
    def harden(self, student: torch.nn.Module, **options: Any) -> HardwareModel:
        """The hardware model of a trained ``student``."""

    @abstractmethod
    def export(self, hw: HardwareModel, path: str | Path, format: str) -> Path:
        """Write ``hw`` in ``format`` (one of :attr:`formats`) to ``path``; returns the path written."""

    @abstractmethod
    def report(self, hw: HardwareModel, x: torch.Tensor | None = None) -> Report:
        """Resources, deployability and energy of ``hw``; measured on inputs ``x`` where it needs activity."""

    def check_format(self, format: str) -> None:
        if format not in self.formats:
            raise BackendError(f"backend {self.name!r} exports {', '.join(self.formats)}; not {format!r}")


#: Built-in adapters, in workflow order. Each module calls :func:`register` at import.
BUILTIN: tuple[str, ...] = ("neurohw.loihi.backend", "optics.backend", "logic.backend")

_REGISTRY: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    """Add ``backend`` to the registry under ``backend.name`` (re-registering replaces it)."""
    if not backend.name:
        raise BackendError(f"{type(backend).__name__}: a backend needs a name")
    _REGISTRY[backend.name] = backend
    return backend


def import_optional(name: str):
    """Import module ``name``; None when that module (or its package) is not in this checkout.

    An ImportError raised from *inside* the module is a real bug and propagates.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            return None
        raise


def backends() -> dict[str, Backend]:
    """The registered backends by name, built-in adapters first (those present in this checkout)."""
    for mod in BUILTIN:
        import_optional(mod)
    return dict(_REGISTRY)


def get_backend(name: str) -> Backend:
    """The backend registered as ``name``; :class:`BackendError` lists the known ones otherwise."""
    known = backends()
    if name not in known:
        raise BackendError(f"unknown backend {name!r}; registered: {', '.join(sorted(known)) or 'none'}")
    return known[name]
