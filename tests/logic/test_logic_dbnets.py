"""∂B operators are hard-equivalent to their boolean counterparts; the ∂B MNIST net's soft bits harden to its hard net."""
from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from logic import dbnets as db

# Soft bits at a few distances from 1/2 on either side (never 1/2 itself), float64.
SOFT_FALSE = (0.0, 0.1, 0.3, 0.49, 0.4999)
SOFT_TRUE = (1.0, 0.9, 0.7, 0.51, 0.5001)

soft_bit = st.one_of(st.floats(0.0, 0.499), st.floats(0.501, 1.0))


def _soft_vectors(n):
    """Every sign pattern of length n, each filled with several soft values per side."""
    rows = []
    for pattern in itertools.product((0, 1), repeat=n):
        for k in range(len(SOFT_TRUE)):
            rows.append([(SOFT_TRUE if p else SOFT_FALSE)[(k + i) % len(SOFT_TRUE)] for i, p in enumerate(pattern)])
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("soft,hard", [(db.soft_and, db.hard_and), (db.soft_or, db.hard_or), (db.soft_maj, db.hard_maj)])
def test_nary_ops_exhaustive_sign_patterns(n, soft, hard):
    x = _soft_vectors(n)
    out = soft(x, -1)
    assert ((out >= 0) & (out <= 1)).all()
    assert torch.equal(db.harden(out), hard(db.harden(x), -1))


def test_binary_ops_exhaustive():
    v = torch.tensor(SOFT_FALSE + SOFT_TRUE, dtype=torch.float64)
    w, x = torch.meshgrid(v, v, indexing="ij")
    for soft, hard in ((db.soft_not, db.hard_not), (db.soft_implies, db.hard_implies)):
        out = soft(w, x)
        assert ((out >= 0) & (out <= 1)).all()
        assert torch.equal(db.harden(out), hard(db.harden(w), db.harden(x)))
    # ∂¬ at the corners is exactly the boolean function
    assert db.soft_not(torch.tensor(1.0), torch.tensor(0.0)) == 0 and db.soft_not(torch.tensor(0.0), torch.tensor(0.0)) == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(soft_bit, min_size=1, max_size=33))
def test_nary_ops_property(xs):
    x = torch.tensor(xs, dtype=torch.float64)
    for soft, hard in ((db.soft_and, db.hard_and), (db.soft_or, db.hard_or), (db.soft_maj, db.hard_maj)):
        assert bool(db.harden(soft(x, 0))) == bool(hard(db.harden(x), 0))


@settings(max_examples=200, deadline=None)
@given(soft_bit, soft_bit)
def test_binary_ops_property(w, x):
    tw, tx = torch.tensor(w, dtype=torch.float64), torch.tensor(x, dtype=torch.float64)
    assert bool(db.harden(db.soft_not(tw, tx))) == bool(db.hard_not(db.harden(tw), db.harden(tx)))
    assert bool(db.harden(db.soft_implies(tw, tx))) == bool(db.hard_implies(db.harden(tw), db.harden(tx)))


def test_margin_packing_is_gradient_rich():
    """Every input of ∂∧/∂∨/∂Maj gets a non-zero gradient, also when the representative is saturated."""
    for op in (db.soft_and, db.soft_or, db.soft_maj):
        x = torch.tensor([0.0, 0.2, 0.8, 1.0, 0.6], dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(op(x, 0), x)
        assert (g != 0).all(), op.__name__


def test_dbnet_soft_hardens_to_hard_net():
    torch.manual_seed(0)
    net = db.DBMnistNet(n_in=64, width1=8, group=16, width2=5, num_classes=4, seed=3)
    assert net.n_weights() == 64 * 8 + 32 * 5
    images = torch.rand(200, 1, 8, 8)
    x = net.encode(images)
    assert torch.equal(db.harden(net.bits(x)), net.hard_bits(x))
    # after some (random) training steps too
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(net(x) / 4, torch.randint(0, 4, (200,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        net.clamp_()
    assert torch.equal(db.harden(net.bits(x)), net.hard_bits(x))
    assert torch.equal(db.harden(net.bits(x)).view(200, 4, -1).sum(-1), net.hard_logits(x))


def test_dbnet_default_size_matches_paper():
    assert db.DBMnistNet().n_weights() == 105_840
    with pytest.raises(ValueError, match="group"):
        db.DBMnistNet(n_in=10, width1=3, group=16)


def test_straight_through_training_learns_the_hard_counts(mnist5k):
    """``fit_dbnet(ste=True)``: the loss sees the hardened bucket counts; the hard net learns (well above chance)."""
    from logic.train import evaluate_dbnet, fit_dbnet

    m = db.DBMnistNet(width1=20, group=16, width2=10, seed=0)
    w0 = m.w2.detach().clone()
    fit_dbnet(m, mnist5k.x_train[:1000], mnist5k.y_train[:1000], epochs=2, lr=0.05, tau=20.0, ste=True, progress=False)
    assert not torch.equal(w0, m.w2)  # gradients reach the weights through the straight-through estimator
    r = evaluate_dbnet(m, mnist5k.x_val, mnist5k.y_val)
    assert r["acc_hard"] > 0.4, r


# ---------------------------------------------------------------------------- fit_dbnet's switches
def _tiny_problem(n=256, seed=0):
    """A 4-class problem on 64 random input bits: class = which quarter of the bits holds the most ones."""
    g = torch.Generator().manual_seed(seed)
    images = (torch.rand(n, 1, 8, 8, generator=g) < 0.3).float()
    images.view(n, -1)[:, :16] += (torch.arange(n) % 4 == 0).float()[:, None] * (torch.rand(n, 16, generator=g) < 0.5)
    x = images.clamp(0, 1)
    y = x.view(n, 4, 16).sum(-1).argmax(-1)
    return x, y


def _tiny_net(seed=1):
    return db.DBMnistNet(n_in=64, width1=8, group=16, width2=5, num_classes=4, seed=seed)


def _soft_bit_spread(net, x):
    """Mean of 4·b·(1 − b) over the soft output bits: 1 when every bit is 1/2, 0 when all are 0 or 1."""
    with torch.no_grad():
        b = net.bits(net.encode(x))
    return float((4 * b * (1 - b)).mean())


def test_saturation_penalty_drives_soft_bits_to_0_or_1():
    """``saturate``: the weights, and so the soft output bits, end far closer to 0/1 than without it; soft = hard holds."""
    from logic.train import fit_dbnet

    x, y = _tiny_problem()
    plain, pushed = _tiny_net(), _tiny_net()
    fit_dbnet(plain, x, y, epochs=6, batch_size=32, lr=0.05, tau=2.0, progress=False)
    tr = fit_dbnet(pushed, x, y, epochs=6, batch_size=32, lr=0.05, tau=2.0, saturate=5.0, schedule="cosine_step",
                   progress=False)
    assert pushed.weight_margin()["weight_margin"] > plain.weight_margin()["weight_margin"] + 0.05
    assert pushed.weight_margin()["weight_margin"] > 0.4
    assert _soft_bit_spread(pushed, x) < _soft_bit_spread(plain, x)
    assert tr.history[-1]["train_saturation"] < tr.history[0]["train_saturation"]
    xb = pushed.encode(x)
    assert torch.equal(db.harden(pushed.bits(xb)), pushed.hard_bits(xb))


@pytest.mark.parametrize("mode", ["hard", "gumbel"])
def test_straight_through_weights_train_and_keep_soft_equals_hard(mode):
    """``weights="hard"/"gumbel"``: the forward uses 0/1 weights, gradients still reach ``w``; the net learns, soft = hard."""
    from logic.train import evaluate_dbnet, fit_dbnet

    x, y = _tiny_problem()
    net = _tiny_net()
    w0 = net.w1.detach().clone()
    fit_dbnet(net, x, y, epochs=6, batch_size=32, lr=0.05, tau=2.0, weights=mode, saturate=1.0, progress=False)
    assert not torch.equal(w0, net.w1)
    r = evaluate_dbnet(net, x, y)
    assert r["soft_equals_hard"], r
    assert r["acc_hard"] > 0.4, r  # chance is 0.25


def test_sampled_weights_forward_is_binary_and_gradient_passes_straight_through():
    from logic.train import sampled_weights

    w = torch.tensor([0.0, 0.2, 0.49, 0.51, 0.9, 1.0], requires_grad=True)
    assert sampled_weights(w, "soft") is w
    h = sampled_weights(w, "hard")
    assert torch.equal(h.detach(), torch.tensor([0.0, 0, 0, 1, 1, 1]))
    (g,) = torch.autograd.grad((h * torch.arange(6.0)).sum(), w)
    assert torch.equal(g, torch.arange(6.0))
    # gumbel: binary samples, P(1) = w for noise scale 1 (logistic noise in logit space)
    wide = torch.full((20000,), 0.2)
    s = sampled_weights(wide, "gumbel", 1.0, torch.Generator().manual_seed(0))
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    assert abs(float(s.mean()) - 0.2) < 0.02
    with pytest.raises(ValueError, match="weights"):
        sampled_weights(w, "noisy")


def test_tau_anneal_and_bad_switches():
    from logic.train import fit_dbnet

    x, y = _tiny_problem(64)
    tr = fit_dbnet(_tiny_net(), x, y, epochs=2, batch_size=32, tau=8.0, tau_end=1.0, progress=False)
    assert tr.history[0]["train_tau"] > tr.history[-1]["train_tau"]
    assert abs(tr.history[-1]["train_tau"] - (8.0 * 0.125 ** (2 / 3) + 1.0) / 2) < 1e-6  # steps 2, 3 of 0..3
    with pytest.raises(ValueError, match="saturate"):
        fit_dbnet(_tiny_net(), x, y, epochs=1, saturate=-1.0, progress=False)
    with pytest.raises(ValueError, match="weights"):
        fit_dbnet(_tiny_net(), x, y, epochs=1, weights="sign", progress=False)


def test_experiment_variants_pass_their_switches_to_fit_dbnet():
    """The experiments' ∂B rows: plain and STE keep their stored configuration; db_mnist_sat uses cfg.db_sat."""
    import inspect

    from logic.experiments import DB_MODELS, MODELS, LogicExperimentConfig, _db_config
    from logic.train import fit_dbnet

    full, quick = LogicExperimentConfig(), LogicExperimentConfig.quick()
    assert set(DB_MODELS) <= set(MODELS)
    assert _db_config("db_mnist", full) == full.db
    assert _db_config("db_mnist_ste", full) == {**full.db, "ste": True}
    sat = _db_config("db_mnist_sat", quick)
    assert sat == quick.db_sat and sat["saturate"] > 0
    hard = _db_config("db_mnist_hard", full)
    assert hard == full.db_hard and hard["weights"] == "hard" and set(hard["straight"].split(",")) == {"implies", "maj", "out"}
    long = _db_config("db_mnist_long", full)  # the control: same length and schedule, soft forward
    assert long == full.db_long and "straight" not in long and "weights" not in long
    assert {k: hard[k] for k in ("epochs", "schedule", "settle", "lr", "tau")} == {k: long[k] for k in ("epochs", "schedule", "settle", "lr", "tau")}
    accepted = set(inspect.signature(fit_dbnet).parameters)
    for cfg in (full, quick):
        for m in DB_MODELS:
            assert set(_db_config(m, cfg)) - {"width1", "group", "width2"} <= accepted, m


def test_experiment_config_round_trips_through_the_result_json(tmp_path):
    """LogicExperimentConfig: full and quick presets survive to_dict → JSON → from_dict (the result
    file's config, with its extra keys), and bad settings are named."""
    import json

    from logic.experiments import LogicExperimentConfig
    from neurohw.errors import UsageError

    for cfg in (LogicExperimentConfig(), LogicExperimentConfig.quick(n_train=123)):
        written = json.loads(json.dumps({"quick": True, **cfg.to_dict(), "models": ["dense_lgn"], "sizes": {}}))
        assert LogicExperimentConfig.from_dict(written) == cfg
    assert LogicExperimentConfig.quick().tree["dense"] == (200, 100) and LogicExperimentConfig().n_train is None
    # every committed result file's config reads back; a group it predates gets the default
    from pathlib import Path

    committed = sorted((Path(__file__).resolve().parents[2] / "results").glob("logic-*.json"))
    for path in committed:
        written = json.loads(path.read_text())["config"]
        if "dense" not in written:  # not an experiments table (e.g. logic-synth)
            continue
        back = json.loads(json.dumps(LogicExperimentConfig.from_dict(written, path.name).to_dict()))
        for g, v in back.items():
            assert v == (written[g] if g in written else json.loads(json.dumps(LogicExperimentConfig().to_dict()))[g]), (path.name, g)
    assert committed
    with pytest.raises(UsageError, match="cfg.json: tree.*unknown setting"):
        LogicExperimentConfig.from_dict({"tree": {"depth": 3}}, "cfg.json")
    with pytest.raises(UsageError, match="cfg.json: dense: epochs"):
        LogicExperimentConfig.from_dict({"dense": {"epochs": "two"}}, "cfg.json")
    with pytest.raises(UsageError, match="cfg.json: n_train"):
        LogicExperimentConfig.from_dict({"n_train": 0}, "cfg.json")


# ---------------------------------------------------------------------------- hard forward, settle, diagnostics
ALL_STAGES = "implies,maj,out"


def test_straight_through_stages_make_the_forward_the_boolean_net():
    """``stages(straight=...)`` with 0/1 weights: every stage's forward equals the boolean net's bits,
    and the ∂B gradients still reach both weight layers."""
    from logic.train import sampled_weights

    x, _ = _tiny_problem(64)
    net = _tiny_net()
    xb = net.encode(x)
    w1, w2 = sampled_weights(net.w1, "hard"), sampled_weights(net.w2, "hard")
    soft = net.stages(xb, w1, w2, straight=tuple(ALL_STAGES.split(",")))
    hard = net.hard_stages(xb)
    for st in ("implies", "maj", "out"):
        assert torch.equal(soft[st], hard[st].float()), st
    net.bucket_sums(soft["out"]).logsumexp(-1).sum().backward()
    assert net.w1.grad.abs().sum() > 0 and net.w2.grad.abs().sum() > 0
    # without straight-through the soft output bits are not 0/1
    assert not torch.equal(net.bits(xb, w1, w2), hard["out"].float())
    with pytest.raises(ValueError, match="unknown stage"):
        net.stages(xb, straight=("input",))


def test_fit_dbnet_hard_forward_trains_the_deployed_net():
    """``straight="implies,maj,out", weights="hard"``: the training forward is the hard net, so with a zero
    learning rate the logged training accuracy is the hard net's; plain training logs the soft sums'."""
    from logic.train import evaluate_dbnet, fit_dbnet

    x, y = _tiny_problem()
    for kw, key in (({"straight": ALL_STAGES, "weights": "hard"}, "acc_hard"), ({}, "acc_soft_logits")):
        net = _tiny_net()
        tr = fit_dbnet(net, x, y, epochs=1, batch_size=32, lr=0.0, tau=2.0, progress=False, **kw)
        r = evaluate_dbnet(net, x, y)
        assert abs(tr.history[0]["train_accuracy"] - r[key]) < 1e-9, (kw, tr.history[0], r)
    assert r["acc_hard"] != r["acc_soft_logits"]  # the two readouts differ on this net: the check can fail
    net = _tiny_net()
    fit_dbnet(net, x, y, epochs=6, batch_size=32, lr=0.05, tau=2.0, straight=ALL_STAGES, weights="hard",
              settle=0.01, progress=False)
    r = evaluate_dbnet(net, x, y)
    assert r["soft_equals_hard"] and r["acc_hard"] > 0.4, r  # chance is 0.25
    with pytest.raises(ValueError, match="straight"):
        fit_dbnet(_tiny_net(), x, y, epochs=1, straight="maj,input", progress=False)
    with pytest.raises(ValueError, match="settle"):
        fit_dbnet(_tiny_net(), x, y, epochs=1, settle=0.5, progress=False)


def test_settle_keeps_the_hard_net_and_restores_soft_equals_hard():
    """Weights at exactly 1/2 give soft bits of 1/2 (hardened false) where the boolean net can say true;
    ``settle_`` moves them off 1/2 on their hardened side: hard bits unchanged, soft = hard again."""
    x, _ = _tiny_problem(64)
    net = _tiny_net()
    with torch.no_grad():
        net.w1[:, :3] = 0.5
        net.w2[::2, 0] = 0.5 + 1e-9
    xb = net.encode(x)
    before = net.hard_bits(xb)
    assert not torch.equal(db.harden(net.bits(xb)), before)
    moved = net.settle_(0.01)
    assert moved == 64 * 3 + net.w2[::2].shape[0]
    assert torch.equal(net.hard_bits(xb), before)
    assert torch.equal(db.harden(net.bits(xb)), before)
    assert float((net.w1.detach() - 0.5).abs().min()) >= 0.01 - 1e-7


def test_stage_report_locates_the_soft_hard_gap():
    """``stage_report``: no mismatches on a hard-equivalent net; hardening the output stage gives the hard
    accuracy, hardening the input nothing (the inputs are already bits), and the soft sums' own accuracy."""
    from logic.dbdiag import stage_report
    from logic.train import evaluate_dbnet, fit_dbnet

    x, y = _tiny_problem()
    net = _tiny_net()
    fit_dbnet(net, x, y, epochs=3, batch_size=32, lr=0.05, tau=2.0, progress=False)
    r, e = stage_report(net, x, y, batch_size=100), evaluate_dbnet(net, x, y)
    assert set(r["stages"]) == {"input", "implies", "maj", "out"}
    assert all(s["mismatches"] == 0 for s in r["stages"].values())
    assert r["stages"]["input"]["margin"] == 0.5 and r["stages"]["input"]["unsaturated"] == 0
    assert abs(r["stages"]["out"]["acc_hardened_from"] - e["acc_hard"]) < 1e-6
    assert abs(r["stages"]["input"]["acc_hardened_from"] - e["acc_soft_logits"]) < 1e-6
    assert abs(r["acc_soft_logits"] - e["acc_soft_logits"]) < 1e-6 and abs(r["acc_hard"] - e["acc_hard"]) < 1e-6
    assert 0 < r["stages"]["out"]["margin"] < 0.5


def test_experiments_db_mnist_hard_row_is_deployed_equals_trained(tmp_path):
    """The experiments' ``db_mnist_hard`` row (quick sizes): trained with the hard forward, settled, and its
    soft bits harden to the boolean net's on every test image; the result file records ``db_hard``."""
    import json

    from logic.experiments import run_experiments

    res = run_experiments(tmp_path, seeds=1, quick=True, models=("db_mnist_hard",), progress=False)
    (s,) = res["summary"]
    assert s["model"] == "db_mnist_hard" and s["soft_equals_hard_all"] and s["bit_mismatches"] == 0
    assert s["acc_hard"][0] > 0.3, s  # chance is 0.1
    written = json.loads(open(res["result_file"]).read())["config"]
    assert written["db_hard"]["straight"] == "implies,maj,out" and written["db_hard"]["settle"] > 0
