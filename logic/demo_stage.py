"""Demo stage ``logic``: train a small dense LGN on MNIST-5k, harden it, check packed = hard, export C (and run it)."""
from __future__ import annotations

import torch

from neurohw.runtime import torch_threads


def run(ctx) -> dict:
    with torch_threads(1):  # small ops: one thread is faster than two oversubscribed ones
        return _run(ctx)


def _run(ctx) -> dict:
    from logic import export
    from logic.models import dense_lgn, save_model
    from logic.train import evaluate_logic, fit_logic
    from neurohw.seeding import seed_everything

    seed_everything(ctx.seed)
    split = ctx.shared.get("mnist5k")
    if split is None:
        from neurohw.data import load_mnist5k

        split = load_mnist5k()
    if ctx.quick:
        split = split.subset(800, 300)
        widths, epochs = (1000, 1000, 500), 10
    else:
        widths, epochs = (4000, 4000, 4000), 8
    model = dense_lgn(levels=2, widths=widths, tau=10.0 if not ctx.quick else 5.0, seed=ctx.seed)
    tr = fit_logic(model, split.x_train, split.y_train, epochs=epochs, lr=0.05, batch_size=128, seed=ctx.seed, progress=False)
    m = evaluate_logic(model, split.x_test, split.y_test)
    save_model(model, ctx.path("logic/dense_lgn.safetensors"), extra={"metrics": m})
    net = model.to_netlist()
    net.save(ctx.path("logic/netlist.npz"))
    export.write_verilog(net, ctx.path("logic/dense_lgn.v"))
    src = export.write_c(net, ctx.path("logic/dense_lgn.c"))
    figures = {
        "epochs": epochs, "widths": list(widths), "train_s": round(tr.train_s, 2),
        "acc_float": m["acc_float"], "acc_hard": m["acc_hard"], "acc_packed": m["acc_packed"],
        "packed_counts_equal_hard": m["counts_equal"], "gates": m["gates"], "gates_raw": m["gates_raw"],
    }  # fmt: skip
    c_line = "no C compiler found: C export written, not compiled"
    if export.find_cc():
        exe = export.compile_c(src, ctx.path("logic/dense_lgn_bin"))
        bits = model.encode_bits(split.x_test)
        c_counts = export.run_c_counts(exe, bits, net.num_classes)
        figures["c_counts_equal_hard"] = bool(torch.equal(c_counts, model.hard_counts(split.x_test)))
        figures["c_images_per_s"] = export.bench_c(exe, 200 if ctx.quick else 2000, 3)["images_per_s"]
        c_line = (f"compiled C export: counts equal the hardened float model's: {figures['c_counts_equal_hard']}; "
                  f"{figures['c_images_per_s']:,.0f} images/s on one core")
    ctx.section("Logic-gate network (dense LGN, MNIST-5k)", f"""
Dense LGN, widths {list(widths)}, {epochs} epochs ({figures['train_s']} s). Test accuracy: soft float
{100 * m['acc_float']:.2f} %, hardened {100 * m['acc_hard']:.2f} %, packed netlist {100 * m['acc_packed']:.2f} %
(packed class counts equal the hardened model's on every image: {m['counts_equal']}).
Gates: {m['gates']:,} under the counting rule (raw {m['gates_raw']:,}). {c_line}.
Files: `logic/dense_lgn.safetensors`, `logic/netlist.npz`, `logic/dense_lgn.c`, `logic/dense_lgn.v`.
""")
    return figures
