"""Optional device terms of the optics twin: effects between the tile images and the sensor.

:class:`TileTerms` maps the per-tile sensor irradiance of a :class:`~optics.frontend.DeviceFrontEnd`
``(B, 2K, H, W)`` (feature units, after conv, misalignment, per-tile gain and offset) to the
irradiance the pixels integrate, with any of these terms (names in :data:`TERMS`), applied in
this order and computed in float64 (the result is cast back to the input dtype):

* ``blur`` — field-dependent Gaussian blur of each tile image: variance ``v_y·ρ_t²`` along y and
  ``v_x·ρ_t²`` along x (px²), ``ρ_t = |c_t| / max_u |c_u|`` the tile centre's field radius (0 on
  the axis, 1 at the outermost tile), i.e. a blur width ``σ = sqrt(v)·ρ_t`` growing linearly with
  the field, anisotropic when ``v_y ≠ v_x``. Done as the discrete Gaussian's transfer function
  ``exp(v_y(cos 2πf_y − 1) + v_x(cos 2πf_x − 1))`` (a positive kernel of variance exactly ``v``,
  ≈ the sampled Gaussian for σ ≳ 1 px) on the edge-replicated tile image, differentiable in ``v``
  at 0;
* ``crosstalk`` — each tile receives the fraction ``c_d ≥ 0`` of its grid neighbour's image in
  direction ``d`` (right, left, below, above; none at the grid edge), displaced by an integer
  ghost shift ``(dy, dx)_d`` (px, zero-filled); ``c_d`` is fitted, the shift is found by search
  (:mod:`calibration.twin_terms`);
* ``magnification`` — each tile image scaled about its own centre by ``1 + m_y`` (y) and
  ``1 + m_x`` (x) (bilinear, edge-replicated): the lens's image scale against the design,
  anisotropic when ``m_y ≠ m_x``;
* ``vignetting`` — irradiance × ``(1 − v·r²/r_max²)``, ``r`` a pixel's distance from the optical
  axis, ``r_max`` the largest over all tile pixels: ``v`` is the fractional falloff at the field
  edge;
* ``response`` — the sensor's response curve ``u = s·(y/s)^γ`` (``s`` the reference irradiance,
  a buffer: the sensor's saturation irradiance when the term was fitted) followed by a soft
  saturation ``u / (1 + κ·u/s)`` (``κ ≥ 0``, 0: none; the response reaches half of the linear
  value at ``u = s/κ``);
* ``gain`` — a per-pixel gain map per tile, ``1 + Σ_j a_tj·B_j(p)``: with ``gain_degree = d``
  the basis is the 2-D Legendre products ``P_i(u)·P_k(v)``, ``1 ≤ i + k ≤ d`` over the tile
  (a smooth, low-order map; the constant is the per-tile gain), with ``gain_degree = None`` one
  free value per pixel.

Every term is the identity at its neutral value (all parameters 0, ``γ = 1``), but a module is
only built with the terms switched on: a device without :class:`TileTerms` is the plain twin.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TERMS", "TileTerms", "legendre_basis", "neighbours"]

#: The switchable terms, in the order they are applied.
TERMS = ("blur", "crosstalk", "magnification", "vignetting", "response", "gain")
#: Cross-talk directions: (name, grid step (dy, dx) to the neighbour whose light leaks in).
DIRECTIONS = (("right", (0, 1)), ("left", (0, -1)), ("below", (1, 0)), ("above", (-1, 0)))
_BLUR_PAD = 8  # px of edge replication around a tile image before the FFT blur


def neighbours(centres: torch.Tensor) -> torch.Tensor:
    """Per tile and direction of :data:`DIRECTIONS`, the nearest tile in that direction on the same
    grid row/column, or −1: ``(n_tiles, 4)`` long. ``centres``: ``(n, 2)`` (y, x) px."""
    c = centres.double()
    n = len(c)
    out = torch.full((n, len(DIRECTIONS)), -1, dtype=torch.long)
    for t in range(n):
        for j, (_, (dy, dx)) in enumerate(DIRECTIONS):
            best = None
            for u in range(n):
                d = c[u] - c[t]
                along = float(d[1] * dx + d[0] * dy)  # distance along the direction
                across = float(abs(d[0])) if dx else float(abs(d[1]))
                if u != t and along > 0 and across < 0.5 and (best is None or along < best[0]):
                    best = (along, u)
            if best is not None:
                out[t, j] = best[1]
    return out


def legendre_basis(h: int, w: int, degree: int | None) -> torch.Tensor:
    """Gain-map basis ``(J, h, w)`` float64: Legendre products of total degree 1..``degree`` on
    ``[−1, 1]²`` (pixel centres), or the ``h·w`` one-pixel indicators for ``degree=None``."""
    if degree is None:
        return torch.eye(h * w, dtype=torch.float64).reshape(h * w, h, w)
    if degree < 1:
        raise ValueError(f"gain map degree must be >= 1 or None (per pixel), got {degree}")
    v = torch.linspace(-1, 1, h, dtype=torch.float64)
    u = torch.linspace(-1, 1, w, dtype=torch.float64)

    def leg(x, k):
        p0, p1 = torch.ones_like(x), x
        if k == 0:
            return p0
        for m in range(1, k):
            p0, p1 = p1, ((2 * m + 1) * x * p1 - m * p0) / (m + 1)
        return p1

    out = [leg(v, i)[:, None] * leg(u, k)[None, :] for tot in range(1, degree + 1) for i in range(tot + 1)
           for k in [tot - i]]
    return torch.stack(out)


def shift_zero(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``img (…, H, W)`` with its content displaced by integer ``(dy, dx)`` px, zero-filled."""
    h, w = img.shape[-2:]
    out = torch.zeros_like(img)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = img[..., ys, xs]
    return out


class TileTerms(nn.Module):
    """The optional terms (module docstring) for tiles at ``centres`` ``(2K, 2)`` with images ``(H, W)``.

    Parameters (float64; neutral values in brackets): ``blur_var`` (2,) [0] px² (y, x) at the
    outermost tile; ``crosstalk`` (4,) [0] fractions per direction, with the buffer
    ``ghost_shift`` (4, 2) px; ``magnification`` (2,) [0] (y, x), fractional; ``vignetting`` () [0];
    ``gamma`` () [1] and ``saturation`` () [0] (κ) with the buffer ``response_ref`` (s, feature
    units); ``gain_coef`` (2K, J) [0] with the buffer ``gain_basis`` (J, H, W). Only the terms in
    ``terms`` act; the others' parameters stay at their neutral values and are not reported.
    """

    def __init__(self, terms, centres: torch.Tensor, image_hw: tuple[int, int], gain_degree: int | None = 2):
        super().__init__()
        terms = tuple(terms)
        bad = [t for t in terms if t not in TERMS]
        if bad:
            raise ValueError(f"TileTerms: unknown term(s) {bad}; known: {', '.join(TERMS)}")
        self.terms = tuple(t for t in TERMS if t in terms)
        self.gain_degree = gain_degree
        h, w = (int(s) for s in image_hw)
        self.image_hw = (h, w)
        n = len(centres)
        c = centres.double()
        dd = torch.float64
        self.register_buffer("centres", c.clone())
        rc = c.norm(dim=1)
        self.register_buffer("field_rho", rc / rc.max().clamp_min(1e-12))
        yy = torch.arange(h, dtype=dd) - (h - 1) / 2
        xx = torch.arange(w, dtype=dd) - (w - 1) / 2
        r2 = (c[:, 0].view(n, 1, 1) + yy.view(1, h, 1)) ** 2 + (c[:, 1].view(n, 1, 1) + xx.view(1, 1, w)) ** 2
        self.register_buffer("vignetting_rho2", r2 / r2.max())
        self.register_buffer("neighbour", neighbours(c))
        self.register_buffer("ghost_shift", torch.zeros(len(DIRECTIONS), 2, dtype=torch.long))
        self.register_buffer("response_ref", torch.ones((), dtype=dd))
        self.register_buffer("gain_basis", legendre_basis(h, w, gain_degree) if "gain" in self.terms
                             else torch.zeros(0, h, w, dtype=dd))
        self.blur_var = nn.Parameter(torch.zeros(2, dtype=dd))
        self.crosstalk = nn.Parameter(torch.zeros(len(DIRECTIONS), dtype=dd))
        self.magnification = nn.Parameter(torch.zeros(2, dtype=dd))
        self.vignetting = nn.Parameter(torch.zeros((), dtype=dd))
        self.gamma = nn.Parameter(torch.ones((), dtype=dd))
        self.saturation = nn.Parameter(torch.zeros((), dtype=dd))
        self.gain_coef = nn.Parameter(torch.zeros(n, len(self.gain_basis), dtype=dd))

    def extra_repr(self) -> str:
        return f"terms={self.terms}, gain_degree={self.gain_degree}"

    def trainable(self) -> dict[str, list[nn.Parameter]]:
        """The parameters of the switched-on terms, by term (the ghost shift is searched, not trained)."""
        p = {"blur": [self.blur_var], "crosstalk": [self.crosstalk], "magnification": [self.magnification],
             "vignetting": [self.vignetting], "response": [self.gamma, self.saturation], "gain": [self.gain_coef]}
        return {t: p[t] for t in self.terms}

    # -- the terms, one by one (each (B, n, H, W) float64 → same) -----------------------------
    def blur(self, y: torch.Tensor) -> torch.Tensor:
        v = self.blur_var.clamp_min(0)
        p = _BLUR_PAD
        h, w = y.shape[-2:]
        b, n = y.shape[:2]
        z = F.pad(y.reshape(b * n, 1, h, w), (p, p, p, p), mode="replicate").reshape(b, n, h + 2 * p, w + 2 * p)
        fy = torch.fft.fftfreq(h + 2 * p, dtype=y.dtype, device=y.device)
        fx = torch.fft.rfftfreq(w + 2 * p, dtype=y.dtype, device=y.device)
        rho2 = self.field_rho.to(y.dtype).pow(2).view(n, 1, 1)
        # the discrete Gaussian's transfer exp(v·(cos 2πf − 1)): a positive kernel of variance exactly v px²
        tf = torch.exp(rho2 * (v[0] * (torch.cos(2 * math.pi * fy).view(1, -1, 1) - 1)
                               + v[1] * (torch.cos(2 * math.pi * fx).view(1, 1, -1) - 1)))
        z = torch.fft.irfft2(torch.fft.rfft2(z) * tf, s=(h + 2 * p, w + 2 * p))
        return z[..., p:p + h, p:p + w]

    def ghosts(self, y: torch.Tensor) -> torch.Tensor:
        """Per direction, the neighbours' images displaced by the ghost shift: ``(4, B, n, H, W)``."""
        out = []
        for j in range(len(DIRECTIONS)):
            nb = self.neighbour[:, j]
            src = y[:, nb.clamp_min(0)] * (nb >= 0).to(y.dtype).view(1, -1, 1, 1)
            out.append(shift_zero(src, int(self.ghost_shift[j, 0]), int(self.ghost_shift[j, 1])))
        return torch.stack(out)

    def add_crosstalk(self, y: torch.Tensor) -> torch.Tensor:
        c = self.crosstalk.clamp_min(0)
        return y + (c.view(-1, 1, 1, 1, 1) * self.ghosts(y)).sum(0)

    def magnify(self, y: torch.Tensor) -> torch.Tensor:
        b, n, h, w = y.shape
        m = self.magnification
        theta = torch.zeros(n, 2, 3, dtype=y.dtype, device=y.device)
        theta[:, 0, 0] = 1 / (1 + m[1])
        theta[:, 1, 1] = 1 / (1 + m[0])
        grid = F.affine_grid(theta, (n, b, h, w), align_corners=True)
        return F.grid_sample(y.transpose(0, 1), grid, mode="bilinear", padding_mode="border",
                             align_corners=True).transpose(0, 1)

    def vignette(self, y: torch.Tensor) -> torch.Tensor:
        return y * (1 - self.vignetting * self.vignetting_rho2.to(y.dtype)).unsqueeze(0)

    def respond(self, y: torch.Tensor) -> torch.Tensor:
        s = self.response_ref.to(y.dtype)
        u = s * (y.clamp_min(0) / s).clamp_min(1e-30) ** self.gamma
        return u / (1 + self.saturation.clamp_min(0) * u / s)

    def gain_map(self) -> torch.Tensor:
        """``(2K, H, W)``: the per-pixel gain of each tile (1 = none)."""
        return 1 + torch.einsum("tj,jhw->thw", self.gain_coef, self.gain_basis)

    def forward(self, y: torch.Tensor, until: str | None = None) -> torch.Tensor:
        """The terms applied to tile irradiance ``y`` ``(B, 2K, H, W)``; ``until``: stop before that term."""
        dtype = y.dtype
        z = y.double()
        steps = (("blur", self.blur), ("crosstalk", self.add_crosstalk), ("magnification", self.magnify),
                 ("vignetting", self.vignette), ("response", self.respond),
                 ("gain", lambda a: a * self.gain_map().unsqueeze(0)))
        for name, fn in steps:
            if name == until:
                break
            if name in self.terms:
                z = fn(z)
        return z.to(dtype)

    # -- reporting ---------------------------------------------------------------------------
    def params_dict(self) -> dict:
        """The fitted value of each switched-on term, in the units of the module docstring."""
        out: dict = {}
        with torch.no_grad():
            if "blur" in self.terms:
                v = self.blur_var.clamp_min(0)
                out["blur"] = {"sigma_edge_px_yx": [math.sqrt(float(a)) for a in v],
                               "variance_edge_px2_yx": [float(a) for a in v],
                               "note": "Gaussian σ at the outermost tile; σ_t = σ·ρ_t (field radius)"}
            if "crosstalk" in self.terms:
                out["crosstalk"] = {name: {"fraction": float(self.crosstalk[j].clamp_min(0)),
                                           "ghost_shift_px_yx": [int(v) for v in self.ghost_shift[j]]}
                                    for j, (name, _) in enumerate(DIRECTIONS)}
            if "magnification" in self.terms:
                m = self.magnification
                out["magnification"] = {"scale_minus_1_yx": [float(m[0]), float(m[1])],
                                        "anisotropy": float(1 - m[0] / m[1]) if abs(float(m[1])) > 1e-9 else None}
            if "vignetting" in self.terms:
                out["vignetting"] = {"falloff_at_field_edge": float(self.vignetting)}
            if "response" in self.terms:
                k = float(self.saturation.clamp_min(0))
                out["response"] = {"gamma": float(self.gamma), "saturation_kappa": k,
                                   "reference_irradiance": float(self.response_ref),
                                   "half_response_irradiance": float(self.response_ref) / k if k > 0 else None}
            if "gain" in self.terms:
                g = self.gain_map() - 1
                out["gain"] = {"basis": "per pixel" if self.gain_degree is None else f"Legendre, degree ≤ {self.gain_degree}",
                               "rms": float(g.pow(2).mean().sqrt()), "std": float(g.std()),
                               "min": float(g.min()), "max": float(g.max())}
        return out

    def config(self) -> dict:
        """What rebuilds this module besides its tensors (the checkpoint's sidecar)."""
        return {"terms": list(self.terms), "gain_degree": self.gain_degree, "image_hw": list(self.image_hw)}
