"""Fashion-MNIST from the Debian package: full size, SHA-256 checked, fixed stratified validation slice."""
from __future__ import annotations

import shutil

import pytest
import torch

from neurohw.data import DataFormatError, FASHION_MNIST_ENV, fashion_mnist_dir, load_dataset, load_fashion_mnist
from neurohw.data.builtin import FASHION_MNIST_SHA256

HAVE = all((fashion_mnist_dir() / f).exists() for f in FASHION_MNIST_SHA256)
needs_data = pytest.mark.skipif(not HAVE, reason="Fashion-MNIST not installed (Debian package dataset-fashion-mnist; "
                                "tools/system_deps.sh installs it, or set NEUROHW_FASHION_MNIST)")


@needs_data
def test_full_fashion_mnist_split():
    s = load_dataset("fashion-mnist")
    assert s.name == "fashion-mnist" and s.num_classes == 10
    assert s.x_train.shape == (54000, 1, 28, 28) and s.x_val.shape == (6000, 1, 28, 28)
    assert s.x_test.shape == (10000, 1, 28, 28) and s.x_train.dtype == torch.float32
    assert torch.bincount(s.y_val).tolist() == [600] * 10 and torch.bincount(s.y_train).tolist() == [5400] * 10
    assert torch.bincount(s.y_test).tolist() == [1000] * 10
    assert 0.0 == float(s.x_test.min()) and float(s.x_test.max()) == 1.0
    # validation and train are disjoint (by content; Fashion-MNIST has a few duplicate images, so compare sets loosely)
    tr = {hash(x.numpy().tobytes()) for x in s.x_train[:20000]}
    assert sum(hash(x.numpy().tobytes()) in tr for x in s.x_val) < 10
    assert torch.bincount(s.y_train[:1000], minlength=10).min() >= 70  # prefixes are class-balanced


@needs_data
def test_altered_or_missing_file_is_named(tmp_path, monkeypatch):
    for f in FASHION_MNIST_SHA256:
        shutil.copy(fashion_mnist_dir() / f, tmp_path / f)
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path))
    assert fashion_mnist_dir() == tmp_path
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(bad.read_bytes())
    raw[100] ^= 0xFF  # one altered byte
    bad.write_bytes(bytes(raw))
    with pytest.raises(DataFormatError, match=r"t10k-labels-idx1-ubyte.gz: SHA-256 [0-9a-f]{64} is not"):
        load_fashion_mnist()
    bad.unlink()
    with pytest.raises(DataFormatError, match="t10k-labels-idx1-ubyte.gz: file does not exist.*dataset-fashion-mnist"):
        load_fashion_mnist()


def test_env_override_names_missing_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path / "none"))
    with pytest.raises(DataFormatError, match=r"none/train-images-idx3-ubyte.gz: file does not exist"):
        load_dataset("fashion-mnist")
