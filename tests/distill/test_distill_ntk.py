"""Estimator tests: every NTK method against an explicit per-sample autograd kernel (float64)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from distill.ntk import NTKError, empirical_ntk, explicit_ntk, n_parameters, resolve_params


def _small_cnn(seed: int = 0, bn: bool = True) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Conv2d(1, 3, 3)]
    if bn:
        layers.append(nn.BatchNorm2d(3))
    layers += [nn.Tanh(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4)]
    m = nn.Sequential(*layers).double()
    if bn:  # non-trivial running statistics so that eval-mode batch norm matters
        with torch.no_grad():
            m[1].running_mean.uniform_(-0.2, 0.2)
            m[1].running_var.uniform_(0.5, 2.0)
            m[1].weight.uniform_(0.5, 1.5)
    return m


def _mlp(seed: int = 0, dtype=torch.float64) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).to(dtype)


def _reduce(full: torch.Tensor, output: str) -> torch.Tensor:
    """The reference reductions of the full kernel (N, N, O, O), written apart from distill.ntk."""
    kernel = full.diagonal(dim1=2, dim2=3).sum(-1)  # Σ_a K[i, j, a, a]
    return {"full": full, "kernel": kernel, "diag": kernel.diagonal(), "trace": kernel.trace()}[output]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().norm() / b.detach().norm())


@pytest.fixture(scope="module")
def cnn_case():
    m = _small_cnn()
    x = torch.randn(6, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return m, x, explicit_ntk(m, x, output="full")


@pytest.mark.parametrize("method", ["exact", "ntvp"])
@pytest.mark.parametrize("output", ["kernel", "full", "diag", "trace"])
@pytest.mark.parametrize("chunk", [None, 5])
def test_exact_and_ntvp_match_explicit_autograd(cnn_case, method, output, chunk):
    m, x, full = cnn_case
    k = empirical_ntk(m, x, method, output, chunk_size=chunk)
    ref = _reduce(full, output)
    assert k.shape == ref.shape and k.dtype == torch.float64
    assert _rel(k, ref) < 1e-10


def test_batchnorm_uses_running_stats_and_modes_are_restored(cnn_case):
    m, x, full = cnn_case
    m.train()
    k = empirical_ntk(m, x, "exact")
    assert m.training and all(mod.training for mod in m.modules())
    assert _rel(k, _reduce(full, "kernel")) < 1e-10
    m.eval()


def test_kernel_is_symmetric_psd(cnn_case):
    m, x, _ = cnn_case
    k = empirical_ntk(m, x, "exact")
    assert torch.allclose(k, k.T, atol=1e-12)
    assert torch.linalg.eigvalsh(k).min() > -1e-9 * k.abs().max()


def test_params_subset_equals_kernel_of_that_subset(cnn_case):
    m, x, _ = cnn_case
    names = ["4.weight", "4.bias"]
    k = empirical_ntk(m, x, "exact", params=names)
    # Explicit reference with only the last layer trainable.
    for n, p in m.named_parameters():
        p.requires_grad_(n in names)
    try:
        ref = explicit_ntk(m, x)
        k_default = empirical_ntk(m, x, "exact")  # params=None: only those with requires_grad
        k_tensors = empirical_ntk(m, x, "sketch", params=[m[4].weight, m[4].bias], n_projections=4, seed=0)
    finally:
        for p in m.parameters():
            p.requires_grad_(True)
    assert _rel(k, ref) < 1e-10 and _rel(k_default, ref) < 1e-10
    assert k_tensors.shape == k.shape
    assert n_parameters(m, names) == 4 * 48 + 4


def test_bad_arguments_give_clear_errors(cnn_case):
    m, x, _ = cnn_case
    with pytest.raises(NTKError, match="method"):
        empirical_ntk(m, x, "nope")
    with pytest.raises(NTKError, match="output"):
        empirical_ntk(m, x, "exact", "nope")
    with pytest.raises(NTKError, match="not a parameter"):
        empirical_ntk(m, x, params=["4.nothing"])
    with pytest.raises(NTKError, match="trace"):
        empirical_ntk(m, x, "perturbation", "kernel")
    with pytest.raises(NTKError, match="returned shape"):
        empirical_ntk(nn.Conv2d(1, 2, 3).double(), x)
    frozen = _mlp()
    for p in frozen.parameters():
        p.requires_grad_(False)
    with pytest.raises(NTKError, match="no parameters"):
        resolve_params(frozen)


def test_float32_matches_float64():
    m64 = _mlp()
    m32 = _mlp().float()
    x = torch.randn(5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    k64 = empirical_ntk(m64, x, "exact")
    k32 = empirical_ntk(m32, x.float(), "exact")
    assert k32.dtype == torch.float32
    assert _rel(k32.double(), k64) < 1e-5


def test_sketch_is_unbiased_and_error_falls_like_inverse_sqrt_r(cnn_case):
    m, x, full = cnn_case
    ref = _reduce(full, "kernel")
    rs = [4, 16, 64, 256]
    errs = []
    for r in rs:
        e = [_rel(empirical_ntk(m, x, "sketch", n_projections=r, seed=s), ref) ** 2 for s in range(8)]
        errs.append(math.sqrt(np.mean(e)))
    slope = np.polyfit(np.log(rs), np.log(errs), 1)[0]
    assert -0.62 < slope < -0.38, (slope, errs)
    # Unbiased: the mean of many independent sketches approaches the exact kernel.
    mean = torch.stack([empirical_ntk(m, x, "sketch", n_projections=64, seed=100 + s) for s in range(16)]).mean(0)
    assert _rel(mean, ref) < 2.5 * errs[2] / 4  # 16× the projections → about 1/4 of the error


@pytest.mark.parametrize("projection", ["gaussian", "rademacher"])
def test_sketch_full_and_diag_consistent(cnn_case, projection):
    m, x, _ = cnn_case
    full = empirical_ntk(m, x, "sketch", "full", n_projections=8, seed=5, projection=projection)
    kern = empirical_ntk(m, x, "sketch", "kernel", n_projections=8, seed=5, projection=projection, chunk_size=3)
    diag = empirical_ntk(m, x, "sketch", "diag", n_projections=8, seed=5, projection=projection)
    assert _rel(torch.einsum("ijcc->ij", full), kern) < 1e-12
    assert _rel(torch.diagonal(kern), diag) < 1e-12


def test_perturbation_estimates_the_trace(cnn_case):
    m, x, full = cnn_case
    ref_diag = _reduce(full, "diag")
    est = empirical_ntk(m, x, "perturbation", "diag", n_projections=2000, seed=0, sigma=1e-4, chunk_size=500)
    # Monte Carlo error of a mean of R squared Gaussians per sample ~ sqrt(2/R) · Θ_ii.
    assert _rel(est, ref_diag) < 5 * math.sqrt(2 / 2000)
    tr = empirical_ntk(m, x, "perturbation", "trace", n_projections=2000, seed=0, sigma=1e-4, chunk_size=500)
    assert abs(float(tr.detach()) - float(est.detach().sum())) < 1e-9 * float(tr.detach())


def test_sketch_gradients_pass_gradcheck():
    m = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    torch.manual_seed(0)
    x = torch.randn(3, 3, dtype=torch.float64)
    names = [n for n, _ in m.named_parameters()]
    k_target = torch.randn(3, 3, dtype=torch.float64)

    def loss(*tensors):
        k = empirical_ntk(m, x, "sketch", params=dict(zip(names, tensors)), n_projections=5, seed=7)
        return ((k - k_target) ** 2).mean()

    inputs = tuple(p.detach().clone().requires_grad_(True) for p in m.parameters())
    assert torch.autograd.gradcheck(loss, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_exact_kernel_gradient_matches_finite_difference():
    m = _mlp()
    x = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    names = [n for n, _ in m.named_parameters()]

    def f(*tensors):
        return empirical_ntk(m, x, "exact", params=dict(zip(names, tensors))).sum()

    inputs = tuple(p.detach().clone().requires_grad_(True) for p in m.parameters())
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 5), seed=st.integers(0, 1000))
def test_property_ntvp_equals_exact_any_batch(n, seed):
    m = _mlp(seed)
    x = torch.randn(n, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    a = empirical_ntk(m, x, "exact", "full")
    b = empirical_ntk(m, x, "ntvp", "full", chunk_size=4)
    assert _rel(b, a) < 1e-10


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(cnn_case):
    m, x, _ = cnn_case
    k_cpu = empirical_ntk(m, x, "sketch", n_projections=8, seed=3)
    mc = _small_cnn().cuda()
    k_gpu = empirical_ntk(mc, x, "sketch", n_projections=8, seed=3)
    assert k_gpu.device.type == "cuda"
    assert _rel(k_gpu.cpu(), k_cpu) < 1e-10
    assert _rel(empirical_ntk(mc, x, "exact").cpu(), empirical_ntk(m, x, "exact")) < 1e-10


class _Surrogate(torch.autograd.Function):
    """Old-style autograd.Function (no setup_context): torch.func cannot transform it."""

    @staticmethod
    def forward(ctx, v):
        ctx.save_for_backward(v)
        return (v > 0).to(v.dtype)

    @staticmethod
    def backward(ctx, g):
        (v,) = ctx.saved_tensors
        return g / (1 + (math.pi * v) ** 2)


class _Spike(nn.Module):
    def forward(self, v):
        return _Surrogate.apply(v)


@pytest.mark.parametrize("method,output", [("exact", "kernel"), ("exact", "full"), ("sketch", "kernel"), ("sketch", "trace"), ("perturbation", "diag")])
def test_autograd_engine_equals_func_engine(method, output):
    m = _mlp(4)
    x = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    a = empirical_ntk(m, x, method, output, engine="func", seed=0)
    b = empirical_ntk(m, x, method, output, engine="autograd", seed=0)
    assert _rel(b, a) < 1e-10 and b.requires_grad


def test_auto_engine_falls_back_for_untransformable_functions():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(5, 6), _Spike(), nn.Linear(6, 3)).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="setup_context"):
        empirical_ntk(m, x, "exact", engine="func")
    with pytest.warns(RuntimeWarning, match="autograd engine"):
        k = empirical_ntk(m, x, "exact")
    assert _rel(k, explicit_ntk(m, x)) < 1e-10
    with pytest.warns(RuntimeWarning):
        ks = empirical_ntk(m, x, "sketch", n_projections=4, seed=0)
    assert torch.allclose(ks, empirical_ntk(m, x, "sketch", n_projections=4, seed=0, engine="autograd"))
    with pytest.raises(NTKError, match="no autograd engine"):
        empirical_ntk(m, x, "ntvp")


@pytest.mark.parametrize("output", ["kernel", "full", "diag"])
def test_sketch_vmapped_jvps_equal_a_loop_of_jvps(cnn_case, output):
    """The R jvps batched in one vmapped forward-mode pass equal R separate jvps (float tolerance)."""
    from torch.func import functional_call, jvp

    m, x, _ = cnn_case
    r = 6
    vmapped = empirical_ntk(m, x, "sketch", output, n_projections=r, seed=11)
    chunked = empirical_ntk(m, x, "sketch", output, n_projections=r, seed=11, chunk_size=1)
    # Same directions as the estimator draws (CPU generator, float64, per parameter in order).
    gen = torch.Generator().manual_seed(11)
    params = dict(m.named_parameters())
    tangents = {k: torch.randn((r, *p.shape), generator=gen, dtype=torch.float64) for k, p in params.items()}
    fixed = dict(m.named_buffers())
    m.eval()
    jvs = []
    for i in range(r):
        _, jv = jvp(lambda p: functional_call(m, {**fixed, **p}, (x,)), (params,), ({k: t[i] for k, t in tangents.items()},))
        jvs.append(jv)
    jv = torch.stack(jvs)
    loop = {"kernel": torch.einsum("ria,rja->ij", jv, jv), "full": torch.einsum("ria,rjb->ijab", jv, jv),
            "diag": torch.einsum("ria,ria->i", jv, jv)}[output] / r
    assert _rel(vmapped, loop) < 1e-12 and _rel(chunked, loop) < 1e-12
