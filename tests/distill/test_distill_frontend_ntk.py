"""The factored linear front-end (distill.frontend_ntk): same kernels, losses and gradients as the model itself."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from distill.frontend_ntk import factorise, linear_frontend
from distill.losses import NTKDLossConfig, student_kernel_loss
from distill.ntk import _batch_fn, empirical_ntk, explicit_ntk, resolve_params
from distill.students import LinearConstrainedStudent, build_student

hybrid = pytest.importorskip("optics.hybrid")
from optics.frontend import KernelFrontEnd  # noqa: E402


def _students(dtype):
    torch.manual_seed(0)
    a = build_student("linear_constrained", 10, (1, 28, 28), 0).to(dtype)
    b = build_student("optical", 10, (1, 28, 28), 0).to(dtype)
    # a back-end whose pool is not a plain s×s average (overlapping 3×3, stride 2): the general pool(unfold) path
    fe = KernelFrontEnd(4, 1, 5, 28)
    c = hybrid.HybridModel(fe, nn.Sequential(nn.AvgPool2d(3, stride=2), nn.Flatten(), nn.Linear(4 * 11 * 11, 6), nn.Tanh(),
                                             nn.Linear(6, 5))).to(dtype)
    return {"linear_constrained": a, "optical": b, "overlapping_pool": c}


def _x(n, dtype, seed=1):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _rel(a, b):
    return float((a - b).detach().norm() / b.detach().norm())


def _grads(model):
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in model.parameters()])


@pytest.mark.parametrize("name", ["linear_constrained", "optical", "overlapping_pool"])
def test_recognised_and_factored_logits_equal_the_forward(name):
    m = _students(torch.float64)[name].eval()
    assert linear_frontend(m) is not None
    x = _x(5, torch.float64)
    chosen, fixed = resolve_params(m, None)
    g, q = factorise(m, _batch_fn(m, fixed), chosen, fixed, x)
    assert torch.allclose(g(chosen, q), m(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["linear_constrained", "optical", "overlapping_pool"])
@pytest.mark.parametrize("method,output", [("exact", "kernel"), ("exact", "full"), ("sketch", "kernel"), ("sketch", "full"),
                                           ("sketch", "diag"), ("perturbation", "diag")])
def test_structured_kernel_equals_plain_kernel(name, method, output):
    m = _students(torch.float64)[name]
    x = _x(6, torch.float64)
    kw = dict(n_projections=3, seed=7, sigma=1e-4)
    a = empirical_ntk(m, x, method, output, structured=False, **kw)
    b = empirical_ntk(m, x, method, output, structured=True, **kw)
    assert a.shape == b.shape
    assert _rel(b, a) < (1e-7 if method == "perturbation" else 1e-11)


def test_structured_exact_kernel_matches_explicit_autograd():
    m = _students(torch.float64)["optical"]
    x = _x(4, torch.float64)
    assert _rel(empirical_ntk(m, x, "exact", structured=True), explicit_ntk(m, x)) < 1e-11


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-4)])
@pytest.mark.parametrize("name", ["linear_constrained", "optical"])
@pytest.mark.parametrize("loss,debias", [("mse", False), ("mse", True), ("normalised", False), ("cka", False)])
def test_ntkd_loss_and_gradient_agree_with_the_unfactored_computation(name, dtype, tol, loss, debias):
    """The NTKD loss and its gradient, new (structured) vs old (the model as it is), same tangents, random batch."""
    m = _students(dtype)[name]
    x = _x(16, dtype, seed=3)
    a = torch.randn(16, 20, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    k_t = (a @ a.T).to(dtype)
    out = {}
    for structured in (False, True):
        cfg = NTKDLossConfig(ntk_loss=loss, n_projections=4, debias=debias, structured=structured)
        m.zero_grad(set_to_none=True)
        d, k = student_kernel_loss(m, x, k_t, cfg, generator=torch.Generator().manual_seed(11))
        d.backward()
        out[structured] = (d.detach(), k, _grads(m))
    (d0, k0, g0), (d1, k1, g1) = out[False], out[True]
    assert float((d1 - d0).abs() / d0.abs()) < tol
    assert _rel(k1, k0) < tol
    assert g0.norm() > 0 and _rel(g1, g0) < 10 * tol


def test_restricted_params_back_end_only():
    m = _students(torch.float64)["optical"]
    x = _x(5, torch.float64)
    names = [n for n, _ in m.named_parameters() if n.startswith("backend.")]
    a = empirical_ntk(m, x, "sketch", params=names, n_projections=3, seed=2, structured=False)
    b = empirical_ntk(m, x, "sketch", params=names, n_projections=3, seed=2)
    assert _rel(b, a) < 1e-11


def test_not_recognised_subclass_training_noise_and_changed_forward():
    class Other(LinearConstrainedStudent):
        def forward(self, x):
            return super().forward(x) * 2

    assert linear_frontend(Other()) is None
    assert linear_frontend(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())) is None
    opt = build_student("optical", 10, (1, 28, 28), 0)
    opt.train()  # the front-end adds training noise: random, not linear
    assert linear_frontend(opt) is None
    opt.eval()
    assert linear_frontend(opt) is not None
    # an instance whose forward no longer matches its type: detected by the check, computed without the factored form
    m = build_student("linear_constrained", 10, (1, 28, 28), 0).double()
    base = m.forward
    m.forward = lambda x: base(x) + 0.1 * base(x) ** 2
    x = _x(4, torch.float64)
    with pytest.warns(RuntimeWarning, match="does not reproduce"):
        k = empirical_ntk(m, x, "exact")
    assert _rel(k, empirical_ntk(m, x, "exact", structured=False)) < 1e-12
