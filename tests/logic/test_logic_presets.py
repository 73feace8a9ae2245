"""The experiment presets give GroupSum a usable logit range (outputs per class / τ)."""
from __future__ import annotations

import pytest
import torch

from logic.experiments import LogicExperimentConfig, logit_range
from logic.models import dense_lgn, logic_tree_net


def _model(kind: str, c: dict):
    if kind == "dense":
        return dense_lgn(levels=c["levels"], widths=c["widths"], tau=c["tau"], seed=0)
    return logic_tree_net(levels=c["levels"], k=c["k"], dense=c["dense"], tau=c["tau"], seed=0)


@pytest.mark.parametrize("kind", ["dense", "tree"])
@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
def test_logit_range_is_the_head_s_largest_score_gap(quick, kind):
    cfg = LogicExperimentConfig.quick() if quick else LogicExperimentConfig()
    c = getattr(cfg, kind)
    head = _model(kind, c).head
    n = (c["widths"] if kind == "dense" else c["dense"])[-1]
    bits = torch.zeros(1, n)
    bits[0, : n // head.num_classes] = 1.0  # class 0's outputs all on, every other class's off
    scores = head(bits)[0]
    assert float(scores[0] - scores[1:].max()) == pytest.approx(logit_range(c, head.num_classes))


@pytest.mark.parametrize("kind", ["dense", "tree"])
def test_full_presets_can_reach_confident_scores(kind):
    # regression: the tree preset had 500 outputs at τ = 10 (range 5: softmax of the right class
    # at most e^5 / (e^5 + 9) ≈ 0.94 even for a perfect net), and its training stalled at ≈ 74 %
    assert logit_range(getattr(LogicExperimentConfig(), kind)) >= 20
