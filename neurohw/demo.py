"""``neurohw demo``: the main job, as a list of stages that each write part of one report.

A stage is a function ``run(ctx: DemoContext) -> dict`` living in its package
(:func:`demo_stages` lists them: the teachers, each registered backend's ``demo_stages`` —
:mod:`neurohw.backend` — then the cross-backend workflows). It trains/evaluates what it needs, saves its plots into
``ctx.out``, appends Markdown with :meth:`DemoContext.section`, and returns the figures
that go into ``results.json``. Stages can hand objects to later ones through
``ctx.shared`` (e.g. the trained LeNet-5 teacher under ``"teacher_lenet5"``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from neurohw.backend import backends, import_optional
from neurohw.io import atomic_write_json, atomic_write_text, provenance

#: (stage name, "module:function") of the stages that belong to no backend: what runs before
#: the backends' stages (the teachers they distil from) and after (workflows that use them).
FIRST_STAGES: tuple[tuple[str, str], ...] = (("teachers", "neurohw.demo_teachers:run"),)
LAST_STAGES: tuple[tuple[str, str], ...] = (("distill", "distill.demo_stage:run"),
                                            ("calibration", "calibration.demo_stage:run"))


def demo_stages() -> tuple[tuple[str, str], ...]:
    """All demo stages in run order; stages whose module is absent from the checkout are skipped at run time."""
    return FIRST_STAGES + tuple(s for b in backends().values() for s in b.demo_stages) + LAST_STAGES


@dataclass
class DemoContext:
    """What every stage gets: the report folder, the quick flag, the seed, shared objects."""

    out: Path
    quick: bool = False
    seed: int = 0
    shared: dict[str, Any] = field(default_factory=dict)
    markdown: list[str] = field(default_factory=list)

    def section(self, title: str, body: str) -> None:
        """Append a Markdown section to the report."""
        self.markdown.append(f"## {title}\n\n{body.strip()}\n")

    def path(self, name: str) -> Path:
        """A path inside the report folder (parents created)."""
        p = self.out / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


def _load_stage(spec: str) -> Callable[[DemoContext], dict] | None:
    mod_name, func_name = spec.split(":")
    mod = import_optional(mod_name)
    return None if mod is None else getattr(mod, func_name)


def run_demo(out: Path, quick: bool = False, seed: int = 0, stages: list[str] | None = None) -> dict:
    """Run the demo stages in order and write ``report.md`` and ``results.json`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(out=out, quick=quick, seed=seed)
    all_stages = demo_stages()
    known = {name for name, _ in all_stages}
    if stages:
        unknown = set(stages) - known
        if unknown:
            raise SystemExit(f"unknown demo stage(s) {sorted(unknown)}; known: {sorted(known)}")
    results: dict[str, Any] = {"provenance": provenance(seed=seed, config={"quick": quick, "stages": stages})}
    for name, spec in all_stages:
        if stages and name not in stages:
            continue
        fn = _load_stage(spec)
        if fn is None:
            continue
        print(f"[demo] stage {name} ...", flush=True)
        t0 = time.perf_counter()
        figures = fn(ctx) or {}
        figures["wall_s"] = round(time.perf_counter() - t0, 2)
        results[name] = figures
        print(f"[demo] stage {name} done in {figures['wall_s']} s", flush=True)
        # Write after every stage so a long demo leaves a usable partial report.
        _write(ctx, results)
    _write(ctx, results)
    print(f"[demo] report: {out / 'report.md'}")
    return results


def _write(ctx: DemoContext, results: dict) -> None:
    header = "# neurohw demo report\n\n" + (
        "Quick mode: few epochs and steps; figures are smoke-test values.\n\n" if ctx.quick else ""
    )
    atomic_write_text(ctx.out / "report.md", header + "\n".join(ctx.markdown))
    atomic_write_json(ctx.out / "results.json", results)
