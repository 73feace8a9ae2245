"""Blocks netx refuses (average/sum pooling, concatenation, residual addition), lowered to
netx-loadable layers + shortcuts: they compute the block's semantics, and are identical in Lava."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neurohw.loihi import CubaParams, LoihiConfigError, LoihiNetwork, pool_layer, simulate
from neurohw.loihi.blocks import add_residual, append_concat, avg_pool_layer
from neurohw.loihi.random_nets import random_block_net, random_spikes
from neurohw.loihi.simulator import cuba_run

T = 30


def _delayed(s: torch.Tensor, steps: int) -> torch.Tensor:
    """Spikes (B, T, ...) shifted ``steps`` later (zeros first), as int64."""
    out = torch.zeros_like(s, dtype=torch.int64)
    out[:, steps:] = s[:, :s.shape[1] - steps].to(torch.int64)
    return out


def _reference_layer(net, res, x, i, a_in):
    layer = net.layers[i]
    spikes, _, _ = cuba_run(layer.neuron, a_in.reshape(a_in.shape[0], a_in.shape[1], -1), net._shapes()[i])
    return spikes.reshape(res.spikes[i].shape)


def test_concat_and_residual_compute_the_block(seed=0):
    """Layer 2 = conv over concat(layer 0, layer 1) + residual of layer 1; layer 5 = dense over
    concat(input, layer 3, layer 4): recomputed from the concatenated, aligned sources."""
    net = random_block_net(seed)
    x = random_spikes(seed, T, net.input_shape, batch=2, rate=0.3)
    res = simulate(net, x)
    src = {-1: torch.as_tensor(x != 0), **{j: s for j, s in enumerate(res.spikes)}}
    B = x.shape[0]
    # layer 2: W over [s0; s1] (both arriving as if through the main chain) + residual weight · s1
    cat = torch.cat([_delayed(src[0], 2), _delayed(src[1], 1)], dim=2).to(torch.float64)
    w = np.concatenate([net.layers[2].shortcuts[0].conn.weight, net.layers[2].weight], axis=1)
    a = F.conv2d(cat.reshape(B * T, *cat.shape[2:]), torch.as_tensor(w, dtype=torch.float64), padding=1).reshape(B, T, -1)
    a = a.to(torch.int64) + net.layers[2].shortcuts[1].conn.weight[0, 0, 0, 0] * _delayed(src[1], 1).reshape(B, T, -1)
    assert torch.equal(_reference_layer(net, res, x, 2, a), res.spikes[2])
    # layer 5: dense over the flattened concatenation [input; s3; s4]
    cat = torch.cat([_delayed(src[-1], 6).reshape(B, T, -1), _delayed(src[3], 2).reshape(B, T, -1),
                     _delayed(src[4], 1).reshape(B, T, -1)], dim=2)
    sc = {s.source: s.conn.weight for s in net.layers[5].shortcuts}
    w = np.concatenate([sc[-1], sc[3], net.layers[5].weight], axis=1)
    a = cat @ torch.as_tensor(w, dtype=torch.int64).t()
    assert torch.equal(_reference_layer(net, res, x, 5, a), res.spikes[5])
    assert all(int(s.sum()) > 0 for s in res.spikes)


def test_average_pool_is_sum_over_window():
    p = CubaParams(du=4095, dv=4095, vth=0)  # relay: spikes iff the input was positive
    avg = LoihiNetwork((2, 4, 4), [avg_pool_layer(2, 2, 8, CubaParams(du=4095, dv=4095, vth=5))])
    sm = LoihiNetwork((2, 4, 4), [pool_layer(2, 2, 2, CubaParams(du=4095, dv=4095, vth=5))])
    x = random_spikes(1, 10, (2, 4, 4), batch=3, rate=0.5)
    assert torch.equal(simulate(avg, x).spikes[0], simulate(sm, x).spikes[0])
    assert int(avg.layers[0].weight.max()) == 2
    with pytest.raises(LoihiConfigError) as info:
        avg_pool_layer(2, 3, 10, p)
    assert info.value.field == "weight"


def test_block_errors_name_the_field():
    net = random_block_net(1)
    with pytest.raises(LoihiConfigError) as info:
        append_concat(net.copy(), [0, 2], np.ones((3, 10)), CubaParams(1, 1, 10))
    assert info.value.field == "sources"
    with pytest.raises(LoihiConfigError) as info:
        append_concat(net.copy(), [4, 5], np.ones((3, 7)), CubaParams(1, 1, 10))
    assert info.value.field == "weight"
    with pytest.raises(LoihiConfigError) as info:
        add_residual(net.copy(), 4, 2, 10)
    assert info.value.field == "source"


@pytest.mark.lava
@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_lowered_blocks_identical_in_lava_via_netx(seed, tmp_path):
    from neurohw.loihi.lava_bridge import run_netx_in_lava
    from neurohw.loihi.netx_io import write_netx

    net = random_block_net(seed)
    path = write_netx(net, tmp_path / "blocks.net")
    x = random_spikes(seed, T, net.input_shape, batch=1, rate=0.3)
    ours, lava = simulate(net, x, probe="all"), run_netx_in_lava(path, x, probe="all")
    for i in range(len(net.layers)):
        assert int(ours.spikes[i].sum()) > 0, f"layer {i} silent"
        assert np.array_equal(ours.spikes[i].numpy(), lava.spikes[i].numpy()), f"spikes of layer {i}"
        assert np.array_equal(ours.voltage[i].numpy(), lava.voltage[i].numpy()), f"voltage of layer {i}"
        assert np.array_equal(ours.current[i].numpy(), lava.current[i].numpy()), f"current of layer {i}"
