"""CachedTeacher: stored logits equal the teacher's own, unknown images fall back to the teacher,
and KD training with the cache follows the same trajectory as KD with the plain teacher."""
from __future__ import annotations

import torch
from torch import nn

from neurohw.models import LeNet5
from neurohw.train import random_shift
from snn.teacher_cache import CachedTeacher


def _images(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, 1, 28, 28), generator=g) / 255.0).float()


def test_cached_logits_equal_teacher_and_unknown_images_fall_back():
    torch.manual_seed(0)
    teacher = LeNet5().eval()
    x = _images(64)
    cache = CachedTeacher(teacher, x, batch_size=16)
    idx = torch.tensor([5, 0, 63, 5, 17])
    with torch.no_grad():
        want = teacher(x[idx])
    assert torch.allclose(cache(x[idx]), want, atol=1e-5)
    assert (cache.hits, cache.misses) == (5, 0)
    shifted = random_shift(x[:8], 2, seed=(0, 0, 0), global_index=torch.arange(8).numpy())
    new = torch.cat([shifted, _images(3, seed=1), x[10:12]])  # unseen, unseen, seen
    with torch.no_grad():
        want = teacher(new)
    assert torch.allclose(cache(new), want, atol=1e-5)
    changed = sum(not torch.equal(a, b) for a, b in zip(shifted, x[:8]))
    assert cache.misses == changed + 3 and cache.hits == 5 + 2 + (8 - changed)
    one_pixel = x[:1].clone()
    one_pixel[0, 0, 14, 14] = 1.0 - one_pixel[0, 0, 14, 14]  # a near-duplicate is not a hit
    cache(one_pixel)
    assert cache.misses == changed + 4


def test_teacher_stays_in_eval_mode():
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(784, 10))
    x = _images(8)
    cache = CachedTeacher(teacher, x[:4])
    cache.train()
    assert not cache.teacher.training
    a, b = cache(x), cache(x)  # dropout would make the misses differ
    assert torch.equal(a, b)


def test_kd_training_with_cache_matches_plain_teacher():
    from snn.model import BWSNNConfig
    from snn.train import fit_snn

    torch.manual_seed(0)
    teacher = LeNet5().eval()
    x, y = _images(96, seed=2), torch.arange(96) % 10
    cfg = BWSNNConfig.quick(channels=(16,), epochs=2, batch_size=32, kd=True, kd_lambda=0.7)
    plain = fit_snn(cfg, x, y, teacher=teacher, progress=False)
    cache = CachedTeacher(teacher, x)
    cached = fit_snn(cfg, x, y, teacher=cache, progress=False)
    assert cache.misses == 0 and cache.hits == 2 * 96
    for a, b in zip(plain.history, cached.history):
        assert abs(a["train_kd"] - b["train_kd"]) < 1e-4 and abs(a["train_loss"] - b["train_loss"]) < 1e-4
