"""The calibration loop: captures + trained hybrid model → refit device, adapted back-end, report.

Given a model bundle (:mod:`calibration.bundle`) and a capture file, :func:`calibrate`

1. splits the captures into a calibration slice (``fraction``, stratified, seeded) and the
   held-out rest (:mod:`calibration.split`);
2. **refits** the device model to the slice's measured frames by differentiable simulation
   (:mod:`calibration.device_refit`): gain/offset per tile, shift, rotation, PSF correction
   per tile — labels are not used; the twin's noise comes from the bench (dark frames,
   recorded exposure, repeated exposures: :mod:`calibration.misfit`), never from the residual;
3. **adapts** the back-end to the refit digital twin: the twin simulates measured feature
   maps of the model's own training images (fresh sensor noise every step) and the back-end
   is fine-tuned on them with cross-entropy ("after refit" arm);
4. **fine-tunes** the back-end on the slice's measured frames with CE only or with CE + NTK
   matching (:mod:`distill`: teacher kernel on the raw images, student kernel w.r.t. the
   back-end on the measured feature maps), both the paper's way (from the original back-end,
   slice only) and after the refit (from the adapted back-end, slice mixed with twin data);
5. evaluates everything on the held-out rest, streaming frames from the file, and runs the
   **misfit test** (:func:`calibration.misfit.misfit_test`) of the refit twin against the bench
   noise model on held-out captures: "twin fits within noise", or where it does not;
6. writes a new checkpoint (the input model file is only read) and a report.

Frames of kind ``sensor_frame`` (raw per-tile sensor images, ``2K`` channels in the device's
tile order: positive, negative, positive, …) are combined digitally as the device does
(``positive − negative``, :func:`feature_frames`) wherever the loop reads frames, dark frames
included; ``feature_map`` frames are used as stored.

The four headline accuracies: simulation, device uncalibrated, after refit, after
fine-tuning (CE-only and NTK arms). ``recovery = (acc − uncalibrated) / (simulation − uncalibrated)``.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from calibration.captures import CaptureFile, CaptureFormatError, open_captures
from calibration.device_model import RefitConfig, torch_threads
from calibration.split import Split, calibration_split, nested_splits

#: The arms of the report, in order. ``paper_*``: fine-tune the original back-end on the slice
#: only (the NTKD paper's compensation); ``refit_*``: refit + twin adaptation, then fine-tune.
ARMS = ("paper_ce", "paper_ntk", "refit_ce", "refit_ntk")
ARM_LABELS = {
    "simulation": "simulation (trained model, ideal optics)",
    "simulation_extra": "control: simulation, back-end trained as long as the twin adaptation",
    "uncalibrated": "device, uncalibrated",
    "after_refit": "after refit (back-end adapted to the refit twin)",
    "paper_ce": "fine-tune CE only, slice only (paper baseline)",
    "paper_ntk": "fine-tune CE+NTK, slice only (paper NTKD compensation)",
    "refit_ce": "refit + fine-tune CE only",
    "refit_ntk": "refit + fine-tune CE+NTK (neurohw)",
}
DEFAULT_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


@dataclass
class CalibrationConfig:
    """Settings of :func:`calibrate` (every field is recorded in the report)."""

    fraction: float = 0.1
    seed: int = 0
    device_model: str = "optics"  # "optics" (the optics DeviceFrontEnd) or "generic" (DeviceCorrection)
    # the file's laser PSFs in the optics twin, per matched tile: "off" (design PSFs), "replace" (the
    # measured PSF) or "correct" (design/measured blend, weight fitted per tile); unmatched tiles keep
    # the design PSF (docs/calibration.md, "Laser PSFs in the twin", for the measured choice)
    use_laser_psfs: str = "correct"
    # optional terms of the optics twin (optics.device_terms.TERMS: blur, crosstalk, magnification,
    # vignetting, response, gain), fitted in the refit and reported; () = the plain twin (docs/calibration.md,
    # "Optional twin terms"). twin_gain_degree: Legendre degree of the per-tile gain map, None = per pixel.
    twin_terms: tuple = ()
    twin_gain_degree: int | None = 2
    ghost_search_px: int = 4
    # 100 + 400 refit steps: at 60 + 120 the refit of two of three in-family benchmark devices had not
    # converged and the misfit test (rightly) failed them; ±2 px shift search: the prototype's
    # misalignment σ is about 1 sensor pixel
    refit: RefitConfig = field(default_factory=lambda: RefitConfig(steps_geometry=100, steps_joint=400, lr=0.02,
                                                                   lr_psf=0.01, psf_l2=1e-3, shift_search_px=2,
                                                                   batch_size=64))
    twin_steps: int = 300  # back-end adaptation steps on twin-simulated training images
    twin_lr: float = 1e-3
    finetune_epochs: int = 20  # fine-tuning epochs over the slice (steps = epochs · ⌈n/batch⌉) …
    finetune_max_steps: int = 300  # … capped here
    finetune_lr: float = 5e-4
    batch_size: int = 64
    ntk_beta: float = 1.0
    ntk_loss: str = "normalised"  # "mse" (paper), "normalised" or "cka" (see docs/calibration.md)
    ntk_batch: int = 32
    ntk_projections: int = 8
    teacher: str = "lenet5"
    fractions: tuple = DEFAULT_FRACTIONS
    curve: bool = True
    curve_refit_steps: int = 60  # refit steps per fraction when warm-started from the previous one
    curve_arms: tuple = ("paper_ce", "refit_ntk")
    twin_pool: int = 4000  # at most this many training images for the twin
    save_arm: str = "refit_ntk"
    misfit_captures: int = 200  # held-out captures the misfit test uses (evenly spaced over the held-out rest)
    misfit_bins: int = 8
    misfit_tol: float = 0.25  # excess variance / systematic power tolerated, as a fraction of the noise variance
    misfit_z: float = 4.0  # standard errors beyond which an excess counts as significant
    num_threads: int | None = 1  # torch threads during calibration (small tensors: 1 is fastest)
    progress: bool = False

    def to_dict(self) -> dict:
        d = asdict(self)
        d["refit"] = self.refit.to_dict()
        d["fractions"] = list(self.fractions)
        d["curve_arms"] = list(self.curve_arms)
        d["twin_terms"] = list(self.twin_terms)
        return d

    def __post_init__(self):
        from calibration.twin_terms import parse_gain_degree, parse_twin_terms

        self.twin_terms = parse_twin_terms(self.twin_terms, "CalibrationConfig.twin_terms")
        self.twin_gain_degree = parse_gain_degree(self.twin_gain_degree, "CalibrationConfig.twin_gain_degree")
        if self.twin_terms and self.device_model != "optics":
            raise ValueError(f"CalibrationConfig.twin_terms {list(self.twin_terms)}: the optional twin terms need "
                             f"device_model 'optics', got {self.device_model!r}")

    @classmethod
    def quick(cls, **kw) -> "CalibrationConfig":
        base = dict(refit=RefitConfig(steps_geometry=25, steps_joint=40, lr=0.02, lr_psf=0.01, psf_l2=1e-3,
                                      shift_search_px=1, batch_size=48),
                    twin_steps=80, finetune_epochs=10, finetune_max_steps=60, fractions=(0.05, 0.1, 0.2), curve_refit_steps=20,
                    twin_pool=1000)
        base.update(kw)
        return cls(**base)


# --------------------------------------------------------------------------------------
# data access
# --------------------------------------------------------------------------------------


def capture_inputs(cf: CaptureFile, indices: np.ndarray, dataset_loader: Callable | None = None) -> torch.Tensor:
    """The images shown for ``indices``: from ``inputs/images`` or via ``inputs/dataset_index``."""
    if cf.has("inputs/images"):
        return torch.from_numpy(cf.read("inputs/images", indices))
    if cf.dataset_index is None:
        raise CaptureFormatError(f"{cf.path}: neither /inputs/images nor /inputs/dataset_index is present")
    x_all = _dataset_images(cf, dataset_loader)
    di = cf.dataset_index[indices]
    if di.max() >= len(x_all):
        raise CaptureFormatError(f"{cf.path}: /inputs/dataset_index has {di.max()} but {cf.dataset_name}/{cf.dataset_split} "
                                 f"has {len(x_all)} images")
    return x_all[torch.from_numpy(di)]


def _dataset_images(cf: CaptureFile, dataset_loader: Callable | None) -> torch.Tensor:
    from neurohw.data import load_dataset

    name, split = cf.dataset_name, cf.dataset_split
    if not name:
        raise CaptureFormatError(f"{cf.path}: /inputs/dataset_index has no 'dataset' attribute")
    ds = (dataset_loader or load_dataset)(name)
    return {"train": ds.x_train, "test": ds.x_test}[split or "test"]


def frame_kind(cf: CaptureFile) -> str:
    """``"feature_map"`` or ``"sensor_frame"`` (the ``kind`` attribute of ``measured/frames``)."""
    return str(cf.attrs("measured/frames").get("kind", "feature_map"))


def feature_frames(cf: CaptureFile, frames: np.ndarray) -> np.ndarray:
    """Frames as the back-end sees them: ``sensor_frame`` data ``(…, 2K, H, W)`` combined digitally
    (channel 2k − channel 2k+1, as the device does), ``feature_map`` data unchanged."""
    if frame_kind(cf) != "sensor_frame":
        return frames
    if frames.shape[1] % 2:
        raise CaptureFormatError(f"{cf.path}: /measured/frames: kind 'sensor_frame' needs an even number of tile "
                                 f"channels (positive, negative pairs), got {frames.shape[1]}")
    return frames[:, 0::2] - frames[:, 1::2]


def feature_shape(cf: CaptureFile) -> tuple[int, ...]:
    """``(K, H, W)`` of the feature maps the file's frames give (after :func:`feature_frames`)."""
    c, h, w = cf.frame_shape
    return (c // 2, h, w) if frame_kind(cf) == "sensor_frame" else (c, h, w)


def capture_frames(cf: CaptureFile, indices: np.ndarray | None) -> torch.Tensor:
    """Feature maps of captures ``indices`` (sensor frames combined)."""
    return torch.from_numpy(np.ascontiguousarray(feature_frames(cf, cf.read("measured/frames", indices))))


def dark_feature_frames(cf: CaptureFile) -> torch.Tensor | None:
    """The dark frames as feature maps (sensor frames combined), or None when the file has none."""
    if not cf.has("calibration/dark_frames"):
        return None
    return torch.from_numpy(np.ascontiguousarray(feature_frames(cf, cf.read_static("calibration/dark_frames"))))


@torch.no_grad()
def evaluate_frames(backend: torch.nn.Module, cf: CaptureFile, indices: np.ndarray, batch_size: int = 500) -> float:
    """Accuracy of ``backend`` on the measured frames of ``indices``, streamed from the file."""
    backend.eval()
    correct = 0
    for b in cf.iter_batches(["measured/frames"], batch_size=batch_size, indices=indices):
        logits = backend(torch.from_numpy(np.ascontiguousarray(feature_frames(cf, b["measured/frames"]))))
        correct += int((logits.argmax(1).numpy() == cf.labels[b["index"]]).sum())
    return correct / max(1, len(indices))


@torch.no_grad()
def evaluate_simulation(fn: Callable, cf: CaptureFile, indices: np.ndarray, dataset_loader=None, batch_size: int = 500) -> float:
    """Accuracy of ``fn`` (images → logits) on the inputs of ``indices``, streamed in batches."""
    correct = 0
    for s in range(0, len(indices), batch_size):
        ii = indices[s:s + batch_size]
        correct += int((fn(capture_inputs(cf, ii, dataset_loader)).argmax(1).numpy() == cf.labels[ii]).sum())
    return correct / max(1, len(indices))


# --------------------------------------------------------------------------------------
# back-end training
# --------------------------------------------------------------------------------------


class NTKTerm:
    """The NTK-matching term for the slice: teacher kernel on raw images, student kernel on frames.

    The slice is cut once (seeded) into fixed NTK batches of ``batch`` captures; step ``t``
    uses batch ``t mod n_batches``, so each teacher kernel is computed once and cached.
    """

    def __init__(self, teacher: torch.nn.Module, frames: torch.Tensor, raw: torch.Tensor, *, beta: float, loss: str,
                 batch: int, projections: int, seed: int):
        from distill import NTKDLossConfig, TeacherKernelCache

        self.cache = TeacherKernelCache(teacher)
        self.cfg = NTKDLossConfig(alpha=1.0, beta=beta, ntk_method="sketch", ntk_loss=loss, n_projections=projections)
        self.gen = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(frames), generator=torch.Generator().manual_seed(seed))
        n_batches = max(1, len(frames) // max(2, batch))
        self.chunks = [c for c in perm.chunk(n_batches) if len(c) >= 2] or [perm]
        self.frames, self.raw = frames, raw
        self.step = 0

    def __call__(self, backend, feats, y, logits) -> tuple[torch.Tensor, dict]:
        from distill import ntkd_loss

        c = self.step % len(self.chunks)
        self.step += 1
        chunk = self.chunks[c]
        kt = self.cache(self.raw[chunk], key=f"chunk{c}")
        return ntkd_loss(backend, feats, y, teacher_kernel=kt, ntk_x=self.frames[chunk], logits=logits, config=self.cfg,
                         params=list(backend.parameters()), generator=self.gen)


def train_backend(
    backend: torch.nn.Module,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    slice_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    twin: tuple[Callable, torch.Tensor] | None = None,
    ntk: NTKTerm | None = None,
    progress: bool = False,
    desc: str = "fine-tune",
) -> list[float]:
    """Adam on the back-end for ``steps`` steps through :func:`neurohw.train.fit`; returns the loss per step.

    ``slice_data = (frames, labels)`` — measured minibatches (CE, plus the ``ntk`` term);
    ``twin = (sample_fn, labels)`` — twin-simulated minibatches (CE), ``sample_fn(idx, gen)``
    draws fresh noise every step (see ``DeviceTwin.sampler``). With both, each step uses one
    minibatch of each (loss = mean of the two). The measured minibatches are ``fit``'s epoch
    permutations (seeded by ``seed``, incomplete last batch dropped); the twin's indices and
    noise come from a generator seeded by ``seed``. Constant learning rate ``lr``; the back-end
    is left in eval mode. ``fit`` reseeds the global RNGs with ``seed``.
    """
    from neurohw.train import fit

    if slice_data is None and twin is None:
        raise ValueError("train_backend: give slice_data, twin or both")
    gen = torch.Generator().manual_seed(seed)
    hist: list[float] = []

    def twin_loss() -> torch.Tensor:
        sample, yt = twin
        idx = torch.randperm(len(yt), generator=gen)[:batch_size]
        return F.cross_entropy(backend(sample(idx, gen)), yt[idx])

    if slice_data is not None:
        data, forward = slice_data, None

        def loss_fn(logits, y, x):
            loss = ntk(backend, x, y, logits)[0] if ntk is not None else F.cross_entropy(logits, y)
            if twin is not None:
                loss = torch.stack([loss, twin_loss()]).mean()
            hist.append(float(loss.detach()))
            return loss
    else:  # twin only: fit's "images" are indices into the twin's pool
        sample, yt = twin
        data = (torch.arange(len(yt)), yt)

        def forward(model, idx):
            return model(sample(idx, gen))

        def loss_fn(logits, y, x):
            loss = F.cross_entropy(logits, y)
            hist.append(float(loss.detach()))
            return loss

    n = len(data[1])
    bs = max(1, min(batch_size, n))
    # one bar over the steps: a small slice makes an epoch one or two steps, and fit's per-epoch
    # bars would print hundreds of lines
    bar = tqdm(total=steps, desc=desc, disable=not progress, leave=False)
    fit(backend, data, epochs=max(1, math.ceil(steps / (n // bs))), batch_size=bs, lr=lr, seed=seed,
        device=next(backend.parameters()).device, loss_fn=loss_fn, forward=forward, schedule="constant",
        drop_last=True, max_steps=steps, progress=False, desc=desc, step_hook=lambda m: bar.update(1))
    bar.close()
    backend.eval()
    return hist


# --------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------


@dataclass
class CalibrationResult:
    """Everything :func:`calibrate` measured (``to_dict`` is the JSON of the report)."""

    accuracies: dict
    recovery: dict
    split: dict
    refit: dict
    misfit: dict
    curve: list
    timings: dict
    capture: dict
    config: dict
    backends: dict = field(default_factory=dict, repr=False)
    twin: object = field(default=None, repr=False)
    plot_data: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        return {"accuracies": self.accuracies, "recovery": self.recovery, "split": self.split, "refit": self.refit,
                "misfit": self.misfit, "curve": self.curve, "timings": self.timings, "capture": self.capture, "config": self.config}


def recovery(acc: float, uncal: float, sim: float) -> float | None:
    """Fraction of the simulation→device accuracy loss recovered (None if there was no loss)."""
    gap = sim - uncal
    return None if gap <= 0 else (acc - uncal) / gap


def _make_twin(om, cf: CaptureFile, config: CalibrationConfig):
    from calibration.device_refit import GenericTwin, OpticsTwin

    if config.device_model == "generic":
        return GenericTwin(om.model.frontend)
    if config.device_model != "optics":
        raise ValueError(f"device_model must be 'optics' or 'generic', got {config.device_model!r}")
    responses = laser_kernels(cf, om, config)
    return OpticsTwin(om.model.frontend, om.device_frontend(), electrons_per_unit=_electrons_per_unit(cf),
                      laser_responses=responses, laser_mode=config.use_laser_psfs if responses is not None else "off",
                      terms=config.twin_terms, gain_degree=config.twin_gain_degree,
                      ghost_search_px=config.ghost_search_px)


def laser_kernels(cf: CaptureFile, om, config: CalibrationConfig) -> list | None:
    """The matched laser PSFs as checked point-response images (None per unmatched tile), or None when not used.

    Raises :class:`~calibration.psf_match.PSFMatchError` naming ``/calibration/psf[i]`` for a PSF
    that cannot be used (shape, NaN, no positive energy) and ``ValueError`` for an unknown mode.
    """
    from calibration.psf_match import LASER_PSF_MODES, psf_responses

    if config.use_laser_psfs not in LASER_PSF_MODES:
        raise ValueError(f"CalibrationConfig.use_laser_psfs must be one of {LASER_PSF_MODES}, got {config.use_laser_psfs!r}")
    if config.use_laser_psfs == "off" or config.device_model != "optics":
        return None
    match = laser_psf_match(cf, om, config)
    if match is None or not match.matched:
        return None
    design = om.device_frontend()
    return psf_responses(cf.read_static("calibration/psf"), match, design.tiles.numpy(), design.image_size, where=str(cf.path))


def _twin_pool(cf: CaptureFile, held_out: np.ndarray, config: CalibrationConfig, calib_x: torch.Tensor,
               calib_y: torch.Tensor, dataset_loader) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Training images for the twin: the dataset's train split minus any held-out capture."""
    from neurohw.data import load_dataset

    name = cf.dataset_name
    if not name:
        return calib_x, calib_y, "calibration slice inputs (the capture file names no dataset)"
    ds = (dataset_loader or load_dataset)(name)
    keep = np.ones(len(ds.x_train), dtype=bool)
    if cf.dataset_split == "train" and cf.dataset_index is not None:
        keep[cf.dataset_index[held_out]] = False
    idx = np.flatnonzero(keep)[: config.twin_pool]
    return ds.x_train[idx], ds.y_train[idx], f"{name} train split ({len(idx)} images, held-out captures excluded)"


def _calibrate_once(om, cf, split: Split, twin, config: CalibrationConfig, teacher, dataset_loader, arms,
                    refit_cfg: RefitConfig, timings: dict, held_eval: np.ndarray, adapt_from=None,
                    adapt_steps: int | None = None) -> tuple[dict, dict, dict]:
    """Refit, adapt and fine-tune for one split; returns (accuracies, backends, refit summary)."""
    t = time.perf_counter()
    xs = capture_inputs(cf, split.calib, dataset_loader)
    fs = capture_frames(cf, split.calib)
    ys = torch.from_numpy(cf.labels[split.calib])
    dark = dark_feature_frames(cf)
    refit = twin.refit(xs, fs, refit_cfg, dark_frames=dark)
    noise = bench_noise(cf, twin, dataset_loader)
    refit.noise_source = twin.set_noise(noise)
    refit.noise_rmse = twin.noise_rms(xs, noise)
    timings["refit_s"] = timings.get("refit_s", 0) + time.perf_counter() - t

    base = om.model.backend
    accs, backends = {}, {}
    t = time.perf_counter()
    xp, yp, pool_desc = _twin_pool(cf, split.held_out, config, xs, ys, dataset_loader)
    sampler = (twin.sampler(xp), yp)
    adapted = copy.deepcopy(base if adapt_from is None else adapt_from)
    train_backend(adapted, steps=config.twin_steps if adapt_steps is None else adapt_steps, lr=config.twin_lr, batch_size=config.batch_size, seed=config.seed,
                  twin=sampler, progress=config.progress, desc="adapt to twin")
    accs["after_refit"] = evaluate_frames(adapted, cf, held_eval)
    backends["after_refit"] = adapted
    timings["adapt_s"] = timings.get("adapt_s", 0) + time.perf_counter() - t

    for arm in arms:
        t = time.perf_counter()
        start = base if arm.startswith("paper") else adapted
        b = copy.deepcopy(start)
        term = None
        if arm.endswith("ntk"):
            term = NTKTerm(teacher, fs, xs, beta=config.ntk_beta, loss=config.ntk_loss, batch=config.ntk_batch,
                           projections=config.ntk_projections, seed=config.seed)
        steps = min(config.finetune_max_steps, max(config.finetune_epochs, config.finetune_epochs * math.ceil(len(fs) / config.batch_size)))
        train_backend(b, steps=steps, lr=config.finetune_lr, batch_size=config.batch_size,
                      seed=config.seed + 1, slice_data=(fs, ys),
                      twin=sampler if arm.startswith("refit") else None, ntk=term,
                      progress=config.progress, desc=arm)
        accs[arm] = evaluate_frames(b, cf, held_eval)
        backends[arm] = b
        timings[f"{arm}_s"] = timings.get(f"{arm}_s", 0) + time.perf_counter() - t
    info = refit.to_dict()
    info["twin_pool"] = pool_desc
    info["noise_model"] = None if noise is None else noise.to_dict()
    return accs, backends, info


def _electrons_per_unit(cf: CaptureFile) -> float | None:
    """Photo-electrons per feature unit of the captures: ``exposure_s × source flux`` (None if no flux)."""
    flux = cf.extra.get("source_flux_e_per_unit_s")
    return float(np.median(cf.exposure_s)) * float(flux) if flux else None


def bench_noise(cf: CaptureFile, twin, dataset_loader=None):
    """The noise model from the file's bench data (dark frames, exposure, repeated exposures)."""
    from calibration.misfit import noise_from_captures

    def frames_of(key, idx):
        if key == "calibration/dark_frames":
            return dark_feature_frames(cf).numpy()
        return capture_frames(cf, idx).numpy()

    def signal_of(idx):
        return twin.noise_signal(capture_inputs(cf, idx, dataset_loader)).numpy()

    return noise_from_captures(cf, frames_of, signal_of, electrons_per_unit=_electrons_per_unit(cf))


def misfit_indices(held_out: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` held-out captures, evenly spaced over the held-out rest (sorted)."""
    held = np.sort(np.asarray(held_out))
    if len(held) <= n:
        return held
    return held[np.linspace(0, len(held) - 1, n).round().astype(np.int64)]


def run_misfit(cf: CaptureFile, held_out: np.ndarray, twin, noise, config: CalibrationConfig, dataset_loader=None) -> dict:
    """The misfit test of the refit twin on held-out captures (a dict for the report)."""
    from calibration.misfit import misfit_test

    if noise is None:
        return {"fits_within_noise": None, "verdict": f"not tested: {cf.path} has fewer than 2 /calibration/dark_frames, "
                "so the noise cannot be predicted from the bench", "bins": [], "channels": [], "noise_model": None}
    idx = misfit_indices(held_out, config.misfit_captures)
    x = capture_inputs(cf, idx, dataset_loader)
    with torch.no_grad():
        rep = misfit_test(capture_frames(cf, idx), twin.predict(x), twin.noise_signal(x), noise,
                          n_bins=config.misfit_bins, tol=config.misfit_tol, z=config.misfit_z)
    d = rep.to_dict()
    d["held_out_captures"] = int(len(idx))
    return d


def calibrate(
    om,
    captures: str | Path | CaptureFile,
    config: CalibrationConfig | None = None,
    *,
    teacher: torch.nn.Module | None = None,
    dataset_loader: Callable | None = None,
) -> CalibrationResult:
    """Run the calibration loop (module docstring) on a model bundle ``om`` and a capture file.

    ``teacher``: the NTK teacher (default ``neurohw.train.get_teacher(config.teacher)``).
    ``dataset_loader``: ``name → DatasetSplit`` (default :func:`neurohw.data.load_dataset`).
    """
    config = config or CalibrationConfig()
    from neurohw.data import load_dataset

    loader, cache = dataset_loader or load_dataset, {}

    def cached(name):
        if name not in cache:
            cache[name] = loader(name)
        return cache[name]

    with torch_threads(config.num_threads):
        return _calibrate(om, captures, config, teacher, cached)


def _calibrate(om, captures, config, teacher, dataset_loader) -> CalibrationResult:
    t_start = time.perf_counter()
    own = not isinstance(captures, CaptureFile)
    cf = open_captures(captures) if own else captures
    try:
        if cf.device_kind != "optics" or not cf.has("measured/frames"):
            raise CaptureFormatError(f"{cf.path}: the calibration loop needs optics captures with /measured/frames "
                                     f"(device_kind is {cf.device_kind!r})")
        torch.manual_seed(config.seed)
        om.model.eval()
        with torch.no_grad():
            probe = om.model.frontend(capture_inputs(cf, np.arange(1), dataset_loader))
        if frame_kind(cf) == "sensor_frame":
            feature_frames(cf, np.zeros((1, *cf.frame_shape), np.float32))  # odd tile count → named error
        if tuple(probe.shape[1:]) != feature_shape(cf):
            what = (f"sensor frames {cf.frame_shape} (feature maps {feature_shape(cf)})" if frame_kind(cf) == "sensor_frame"
                    else f"{cf.frame_shape}")
            raise CaptureFormatError(f"{cf.path}: /measured/frames are {what} per capture but the model's "
                                     f"front-end produces {tuple(probe.shape[1:])}")
        if teacher is None and any(a.endswith("ntk") for a in ARMS):
            from neurohw.train import get_teacher

            teacher = get_teacher(config.teacher, progress=config.progress)
        teacher.eval()
        psf_match = laser_psf_match(cf, om, config)  # named error now, before any training
        laser_kernels(cf, om, config)  # likewise for a laser PSF the twin cannot use
        timings: dict = {}
        split = calibration_split(cf.labels, config.fraction, config.seed)

        # reference accuracies on the held-out rest
        t = time.perf_counter()
        accs = {"simulation": evaluate_simulation(om.model, cf, split.held_out, dataset_loader),
                "uncalibrated": evaluate_frames(om.model.backend, cf, split.held_out)}
        timings["evaluate_s"] = time.perf_counter() - t

        # control: the same extra back-end training, in simulation (ideal features, no device)
        t = time.perf_counter()
        xp, yp, _ = _twin_pool(cf, split.held_out, config, torch.empty(0), torch.empty(0), dataset_loader)
        if len(xp):
            with torch.no_grad():
                ideal_pool = torch.cat([om.model.frontend(xp[s:s + 500]) for s in range(0, len(xp), 500)])
            ctrl = copy.deepcopy(om.model.backend)
            train_backend(ctrl, steps=config.twin_steps, lr=config.twin_lr, batch_size=config.batch_size, seed=config.seed,
                          twin=(lambda idx, gen: ideal_pool[idx], yp), progress=config.progress, desc="control")
            accs["simulation_extra"] = evaluate_simulation(lambda xb: ctrl(om.model.frontend(xb)), cf, split.held_out,
                                                           dataset_loader)
        timings["control_s"] = time.perf_counter() - t

        twin = _make_twin(om, cf, config)
        a, backends, refit_info = _calibrate_once(om, cf, split, twin, config, teacher, dataset_loader, ARMS,
                                                  config.refit, timings, split.held_out)
        accs.update(a)
        t = time.perf_counter()
        misfit = run_misfit(cf, split.held_out, twin, bench_noise(cf, twin, dataset_loader), config, dataset_loader)
        timings["misfit_s"] = time.perf_counter() - t
        timings["calibration_s"] = time.perf_counter() - t_start
        rec = {k: recovery(v, accs["uncalibrated"], accs["simulation"]) for k, v in accs.items()
               if k not in ("simulation", "uncalibrated", "simulation_extra")}

        plot_data = _plot_data(cf, split, twin, dataset_loader, psf_match)
        curve = []
        if config.curve:
            t = time.perf_counter()
            curve = sample_efficiency(om, cf, config, teacher, dataset_loader)
            timings["curve_s"] = time.perf_counter() - t
        timings["total_s"] = time.perf_counter() - t_start
        return CalibrationResult(
            accuracies=accs, recovery=rec, split=split.to_dict(), refit=refit_info, misfit=misfit, curve=curve, timings=timings,
            capture={**cf.summary(), "laser_psfs": None if psf_match is None else psf_match.to_dict()},
            config=config.to_dict(), backends=backends, twin=twin, plot_data=plot_data)
    finally:
        if own:
            cf.close()


def sample_efficiency(om, cf: CaptureFile, config: CalibrationConfig, teacher, dataset_loader) -> list[dict]:
    """Accuracy against the slice fraction (nested slices, one common held-out set).

    The held-out set is the complement of the largest slice, so every fraction is scored on
    the same captures. The refit of each fraction is warm-started from the previous (smaller,
    nested) slice's refit — it never sees data outside its own slice — with
    ``curve_refit_steps`` steps after the first; likewise the twin-adapted back-end continues
    from the previous fraction's for a third of ``twin_steps`` (the twin's images are the
    same training pool for every fraction).
    """
    splits = nested_splits(cf.labels, config.fractions, config.seed)
    held = splits[-1].held_out
    twin = _make_twin(om, cf, config)
    out = []
    sim = evaluate_simulation(om.model, cf, held, dataset_loader)
    uncal = evaluate_frames(om.model.backend, cf, held)
    adapted = None
    for i, sp in enumerate(splits):
        rc = config.refit if i == 0 else RefitConfig(**{**config.refit.to_dict(), "steps_geometry": config.curve_refit_steps // 3,
                                                         "steps_joint": config.curve_refit_steps, "shift_search_px": 0,
                                                         "lr": config.refit.lr * 0.25, "lr_psf": config.refit.lr_psf * 0.25})
        timings: dict = {}
        accs, backends, info = _calibrate_once(om, cf, sp, twin, config, teacher, dataset_loader,
                                               [a for a in ARMS if a in config.curve_arms], rc, timings, held,
                                               adapt_from=adapted,
                                               adapt_steps=None if adapted is None else max(1, config.twin_steps // 3))
        adapted = backends["after_refit"]
        row = {"fraction": sp.fraction, "n_calib": int(len(sp.calib)), "n_held_out": int(len(held)),
               "simulation": sim, "uncalibrated": uncal, **accs,
               "refit_rmse": info["rmse_after"], "wall_s": round(sum(timings.values()), 2)}
        out.append(row)
    return out


def laser_psf_match(cf: CaptureFile, om, config: CalibrationConfig):
    """Match the file's laser PSFs to the device's tiles (:mod:`calibration.psf_match`), or None.

    Raises :class:`~calibration.psf_match.PSFMatchError` when ``calibration/psf_positions``
    does not fit the tile layout; a PSF count that cannot be matched is recorded as a note.
    """
    from calibration.psf_match import PSFMatch, match_psfs

    if not cf.has("calibration/psf"):
        return None
    k = int(cf.read_static("calibration/psf").shape[0])
    if config.device_model != "optics":
        return PSFMatch(np.full(0, -1, dtype=np.int64), k, "none", note=f"{cf.path}: the generic device model has no tiles; "
                        "laser PSFs not used")
    centres = om.device_frontend().centres.numpy()
    pos = cf.read_static("calibration/psf_positions") if cf.has("calibration/psf_positions") else None
    return match_psfs(k, centres, pos, where=str(cf.path))


def _plot_data(cf: CaptureFile, split: Split, twin, dataset_loader=None, psf_match=None) -> dict:
    """A few held-out captures: measured frames, the refit twin's prediction, the ideal maps; PSFs."""
    idx = split.held_out[:3]
    x = capture_inputs(cf, idx, dataset_loader) if cf.has("inputs/images") or cf.dataset_name else None
    d = {"measured": capture_frames(cf, idx).numpy()}
    if x is not None:
        d["refit"] = twin.predict(x).numpy()
        d["ideal"] = twin.ideal(x).numpy()
    if hasattr(twin, "nominal_tiles"):
        d["tiles_nominal"] = twin.nominal_tiles().numpy()
        d["tiles_refit"] = twin.effective_tiles().numpy()
    if psf_match is not None and psf_match.matched:
        d["psf_measured"] = psf_match.per_tile(cf.read_static("calibration/psf"))  # list per tile, None = no PSF
    return d
