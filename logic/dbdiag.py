"""Where a ∂B net's soft-logit accuracy and its hard accuracy part: a per-stage report.

:func:`stage_report` runs the soft and the boolean :class:`~logic.dbnets.DBMnistNet` side by side
and gives, for each stage (input bits, ∂⇒, ∂Maj, ∂¬ output bits):

- ``mismatches``: soft bits whose hardened value differs from the boolean net's bit (0 when the
  net is hard-equivalent on these inputs, which the operators guarantee up to float rounding);
- ``margin``: mean ``|b − 1/2|`` (1/2 = every bit at 0 or 1) and ``unsaturated``: the fraction with
  ``|b − 1/2| < 1/4``;
- ``acc_hardened_from``: the accuracy of the soft sums when this stage's bits are replaced by
  their hardened values and the rest of the net runs soft. The step from one stage to the next
  shows which stage carries the accuracy that the hard counts lose (``out`` hardened = the
  bucket counts = the hard net).
"""
from __future__ import annotations

import torch

from logic.dbnets import HALF, STAGES, DBMnistNet, harden, soft_maj, soft_not


def _rest(model: DBMnistNet, stage: str, b: torch.Tensor) -> torch.Tensor:
    """Soft output bits (N, n_maj·W2) from stage ``stage``'s bits ``b`` onwards (soft parameters)."""
    if stage == "input":
        return model.bits(b)
    if stage == "implies":
        b = soft_maj(b.reshape(b.shape[0], -1, model.group), -1)
    if stage in ("implies", "maj"):
        b = soft_not(model.w2.unsqueeze(0), b.unsqueeze(-1)).flatten(1)
    return b


@torch.no_grad()
def stage_report(model: DBMnistNet, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 250,
                 device: str | torch.device = "cpu") -> dict:
    """Per-stage soft-vs-hard figures of ``model`` on images ``x`` (N, ...) in [0, 1], labels ``y`` (N,).

    Returns ``{"stages": {stage: {"mismatches", "bits", "margin", "unsaturated",
    "acc_hardened_from"}}, "acc_soft_logits", "acc_hard", "argmax_disagree"}`` (accuracies and
    fractions in [0, 1]; ``argmax_disagree``: images whose soft-sum and hard-count classes differ).
    """
    device = torch.device(device)
    model.to(device).eval()
    acc = {s: 0 for s in STAGES}
    tot = {s: {"mismatches": 0, "bits": 0, "margin": 0.0, "unsaturated": 0} for s in STAGES}
    n_soft = n_hard = n_dis = 0
    for s in range(0, len(x), batch_size):
        xb = model.encode(x[s : s + batch_size].to(device))
        yb = y[s : s + batch_size].to(device)
        soft, hard = model.stages(xb), model.hard_stages(xb)
        for st in STAGES:
            b, t = soft[st], tot[st]
            m = (b - HALF).abs()
            t["mismatches"] += int((harden(b) != hard[st]).sum())
            t["bits"] += b.numel()
            t["margin"] += float(m.sum())
            t["unsaturated"] += int((m < 0.25).sum())
            acc[st] += int((model.bucket_sums(_rest(model, st, harden(b).to(b.dtype))).argmax(-1) == yb).sum())
        soft_cls = model.bucket_sums(soft["out"]).argmax(-1)
        hard_cls = model.hard_logits(xb).argmax(-1)
        n_soft += int((soft_cls == yb).sum())
        n_hard += int((hard_cls == yb).sum())
        n_dis += int((soft_cls != hard_cls).sum())
    n = len(x)
    stages = {st: {"mismatches": t["mismatches"], "bits": t["bits"], "margin": t["margin"] / t["bits"],
                   "unsaturated": t["unsaturated"] / t["bits"], "acc_hardened_from": acc[st] / n}
              for st, t in tot.items()}
    return {"stages": stages, "acc_soft_logits": n_soft / n, "acc_hard": n_hard / n, "argmax_disagree": n_dis / n}
