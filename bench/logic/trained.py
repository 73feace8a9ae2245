"""The trained ≈50 k-gate dense LGN that ``bench.logic`` times in C, cached in the user cache.

Recipe: 6 dense layers of ``width`` gates (8,000: difflogic's MNIST model size, 48,000 gates as
built; 16,000: ≈50 k gates left after the counting rule's simplification), MNIST-5k (3,500 training images), 2-level thermometer (1,568 input bits), random wiring,
Gaussian init, GroupSum τ = 10, AdamW lr 0.05 (weight decay 0.002), batch 128, ``EPOCHS``
epochs, seed 0. The checkpoint goes to ``<cache>/logic/<stem>.safetensors`` (``$NEUROHW_CACHE``
or ``~/.cache/neurohw``, :func:`neurohw.train.default_cache_dir`) and is trained there on first
use (one thread; on the shared 2-core machine about 8 min for 6 × 8,000 and 20 min for
6 × 16,000); it is never committed.
"""
from __future__ import annotations

import sys
from pathlib import Path

#: Layer widths of the nets the benchmark uses (6 layers each).
WIDTHS = (8000, 16000)
LAYERS = 6
EPOCHS = 10
LR = 0.05
BATCH = 128
TAU = 10.0
SEED = 0


def checkpoint_path(width: int, layers: int = LAYERS, epochs: int = EPOCHS, n_train: int | None = None,
                    cache_dir: str | Path | None = None) -> Path:
    from neurohw.train import default_cache_dir

    n = "" if n_train is None else f"-n{n_train}"
    stem = f"dense-{'x'.join([str(width)] * layers)}-mnist5k{n}-e{epochs}-s{SEED}"
    return Path(cache_dir or default_cache_dir()) / "logic" / f"{stem}.safetensors"


def trained_model(width: int, layers: int = LAYERS, epochs: int = EPOCHS, n_train: int | None = None,
                  cache_dir: str | Path | None = None, progress: bool = True):
    """The trained model of ``layers`` × ``width`` gates (eval mode) and its test metrics
    (``logic.train.evaluate_logic`` on the 1,000 MNIST-5k test images), loaded or trained.

    ``n_train``: train on the first N training images (None: all 3,500); ``layers``, ``epochs``
    and ``n_train`` other than the defaults are for quick smoke runs.
    """
    import json

    from logic.models import dense_lgn, load_model, save_model
    from logic.train import evaluate_logic, fit_logic
    from neurohw.data import load_mnist5k
    from neurohw.seeding import seed_everything

    path = checkpoint_path(width, layers, epochs, n_train, cache_dir)
    split = load_mnist5k()
    if path.exists():
        model = load_model(path).eval()
        meta = json.loads(path.with_suffix(".json").read_text())
        return model, meta["extra"]["metrics"]
    print(f"bench.logic: training the benchmark net into {path} (first use)", file=sys.stderr)
    seed_everything(SEED)
    model = dense_lgn(levels=2, widths=(width,) * layers, tau=TAU, init="gaussian", seed=SEED)
    tr = fit_logic(model, split.x_train[:n_train], split.y_train[:n_train], epochs=epochs, lr=LR, batch_size=BATCH,
                   seed=SEED, progress=progress)
    metrics = evaluate_logic(model, split.x_test, split.y_test)
    metrics["train_s"] = tr.train_s
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, path, extra={"metrics": metrics, "history": tr.history})
    return model.eval(), metrics


if __name__ == "__main__":
    m, met = trained_model(int(sys.argv[1]) if len(sys.argv) > 1 else WIDTHS[0])
    print({k: v for k, v in met.items() if not isinstance(v, (list, dict))})
