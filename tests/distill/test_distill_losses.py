"""Loss tests: KD, the three kernel distances, the combined NTKD loss and the teacher cache."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from torch import nn

from distill.losses import (
    NTKDistiller,
    NTKDLossConfig,
    TeacherKernelCache,
    cka,
    kd_loss,
    kernel_loss,
    ntk_mse,
    ntk_normalised_distance,
    ntkd_loss,
    student_kernel_loss,
)
from distill.ntk import empirical_ntk


def _net(seed, width=6, dtype=torch.float64):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(8, width), nn.Tanh(), nn.Linear(width, 3)).to(dtype)


def _psd(n, seed):
    a = torch.randn(n, n + 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return a @ a.T


def test_kd_loss_matches_definition_and_is_zero_for_equal_logits():
    s = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    t = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    tau = 3.0
    p_t = F.softmax(t / tau, 1)
    ref = (p_t * (p_t.log() - F.log_softmax(s / tau, 1))).sum(1).mean() * tau**2
    assert torch.allclose(kd_loss(s, t, tau), ref, atol=1e-6)
    assert abs(float(kd_loss(t, t, tau))) < 1e-6
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(s, t, 0.0)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 7), seed=st.integers(0, 10_000), scale=st.floats(1e-3, 1e3))
def test_kernel_distances_invariants(n, seed, scale):
    a, b = _psd(n, seed), _psd(n, seed + 1)
    assert float(ntk_mse(a, a)) == 0.0
    assert float(ntk_mse(a, b)) == pytest.approx(float(((a - b) ** 2).mean()))
    # scale invariance of the normalised distance and of CKA
    assert float(ntk_normalised_distance(scale * a, b)) == pytest.approx(float(ntk_normalised_distance(a, b)), rel=1e-9, abs=1e-12)
    assert float(cka(scale * a, b)) == pytest.approx(float(cka(a, b)), rel=1e-9, abs=1e-12)
    assert 0.0 <= float(ntk_normalised_distance(a, b)) <= 4.0 + 1e-12
    assert float(cka(a, a)) == pytest.approx(1.0)
    assert -1e-12 <= float(kernel_loss(a, b, "cka")) <= 1.0 + 1e-12


def test_kernel_loss_errors():
    a = _psd(3, 0)
    with pytest.raises(ValueError, match="differ"):
        ntk_mse(a, _psd(4, 0))
    with pytest.raises(ValueError, match="square"):
        cka(torch.ones(3), torch.ones(3))
    with pytest.raises(ValueError, match="kernel loss"):
        kernel_loss(a, a, "nope")


def test_teacher_cache_computes_once_without_grad():
    teacher = _net(0)
    cache = TeacherKernelCache(teacher)
    x = torch.randn(4, 8, dtype=torch.float64)
    k1 = cache(x)
    k2 = cache(x.clone())
    assert k1 is k2 and cache.hits == 1 and cache.misses == 1 and not k1.requires_grad
    assert torch.allclose(k1, empirical_ntk(teacher, x).detach())
    cache(x + 1)
    assert len(cache) == 2
    small = TeacherKernelCache(teacher, max_entries=1)
    small(x), small(x + 1)
    assert len(small) == 1


@pytest.mark.parametrize("kind", ["mse", "normalised", "cka"])
def test_ntkd_training_reduces_kernel_distance(kind):
    """A student trained on β·D alone moves its exact kernel towards the teacher's."""
    teacher, student = _net(0, width=16), _net(1, width=6)
    x = torch.randn(12, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    y = torch.randint(0, 3, (12,), generator=torch.Generator().manual_seed(3))
    k_t = empirical_ntk(teacher, x).detach()
    before = float(kernel_loss(empirical_ntk(student, x).detach(), k_t, kind))
    cfg = NTKDLossConfig(alpha=0.0, beta=1.0, ntk_loss=kind, n_projections=16)
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(4)
    for _ in range(60):
        loss, parts = ntkd_loss(student, x, y, teacher_kernel=k_t, config=cfg, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = float(kernel_loss(empirical_ntk(student, x).detach(), k_t, kind))
    assert after < 0.7 * before, (before, after)
    assert set(parts) == {"ce", "ntk", "total"}


def test_debiased_sketch_mse_is_unbiased():
    teacher, student = _net(0), _net(1)
    x = torch.randn(5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    k_t = empirical_ntk(teacher, x).detach()
    exact = float(ntk_mse(empirical_ntk(student, x).detach(), k_t))
    plain = NTKDLossConfig(n_projections=4)
    deb = NTKDLossConfig(n_projections=4, debias=True)
    with torch.no_grad():
        p = torch.tensor([float(student_kernel_loss(student, x, k_t, plain, seed=s)[0]) for s in range(300)])
        d = torch.tensor([float(student_kernel_loss(student, x, k_t, deb, seed=s)[0]) for s in range(300)])
    se = float(d.std()) / 300**0.5
    assert abs(float(d.mean()) - exact) < 4 * se
    assert float(p.mean()) > exact  # the plain sketch MSE carries the sketch's variance


def test_combined_loss_parts_and_param_subset():
    teacher, student = _net(0), _net(1)
    x = torch.randn(6, 8, dtype=torch.float64)
    y = torch.randint(0, 3, (6,))
    cfg = NTKDLossConfig(alpha=1.0, beta=0.5, gamma=2.0, temperature=2.0, ntk_method="exact")
    dist = NTKDistiller(teacher, cfg, params=["3.weight", "3.bias"])
    loss, parts = dist(student, x, y)
    logits = student(x)
    k_s = empirical_ntk(student, x, params=["3.weight", "3.bias"])
    k_t = empirical_ntk(teacher, x).detach()
    ref = F.cross_entropy(logits, y) + 0.5 * ntk_mse(k_s, k_t) + 2.0 * kd_loss(logits, teacher(x).detach(), 2.0)
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-10)
    assert set(parts) == {"ce", "ntk", "kd", "total"}
    loss.backward()
    assert student[1].weight.grad is not None  # CE and KD reach the front layer
    dist(student, x, y)
    assert dist.cache.hits == 1
    with pytest.raises(ValueError, match="teacher_kernel"):
        ntkd_loss(student, x, y, config=NTKDLossConfig(beta=1.0))
    with pytest.raises(ValueError, match="teacher kernel"):
        student_kernel_loss(student, x[:3], k_t)


def test_teacher_and_student_may_see_different_inputs():
    """Calibration use: teacher kernel on raw images, student kernel on other inputs (features)."""
    teacher = _net(0)
    backend = nn.Sequential(nn.Linear(5, 3)).double()
    raw = torch.randn(4, 8, dtype=torch.float64)
    feats = torch.randn(4, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (4,))
    dist = NTKDistiller(teacher, NTKDLossConfig(beta=1.0, ntk_method="exact"))
    loss, parts = dist(backend, feats, y, teacher_ntk_x=raw)
    ref = F.cross_entropy(backend(feats), y) + ntk_mse(empirical_ntk(backend, feats), empirical_ntk(teacher, raw).detach())
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-10)


def test_frozen_teacher_kernel_uses_all_its_parameters():
    teacher = _net(0)
    x = torch.randn(4, 8, dtype=torch.float64)
    ref = empirical_ntk(teacher, x).detach()
    for p in teacher.parameters():
        p.requires_grad_(False)
    k = TeacherKernelCache(teacher)(x)
    assert torch.allclose(k, ref, rtol=1e-12) and not any(p.requires_grad for p in teacher.parameters())
