"""The TPM sequence op (nn/ops/tpm.py, kernels/tpm.cl) and the GEMM row blocks it runs on:
kernels against numpy, and the fused recurrence against the layer's per-step graph of ops
(an independent implementation: generic ops, per-step weight gradients)."""

from __future__ import annotations

import numpy as np
import pytest

from neurofx.nn import Model, Tensor, ops
from neurofx.nn.device import get_device
from neurofx.nn.gemm import PACK_TILE, PACK_TILE_NARROW, Gemm, get_gemm, get_rows_gemm
from neurofx.nn.launch import i32, launch
from neurofx.nn.layers.tpm import TPM


def _dev_array(dev, a):
    return dev.to_device(np.ascontiguousarray(a, np.float32))


# ---- Gemm.rows -------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["default", "rows"])
@pytest.mark.parametrize("trans_b", [True, False])
@pytest.mark.parametrize("row0,rows,n,k", [(8, 8, 37, 33), (6, 3, 16, 9), (0, 13, 5, 70),
                                          (24, 8, 300, 260)])
def test_gemm_rows_computes_only_its_row_block(which, trans_b, row0, rows, n, k):
    dev = get_device()
    gemm = get_gemm(dev) if which == "default" else get_rows_gemm(dev)
    rng = np.random.default_rng(row0 + n)
    total = row0 + rows + 5  # rows after the block must stay untouched as well
    a = rng.normal(size=(total, k)).astype(np.float32)
    b = rng.normal(size=(n, k) if trans_b else (k, n)).astype(np.float32)
    c0 = rng.normal(size=(total, n)).astype(np.float32)
    for acc in (False, True):
        c = _dev_array(dev, c0)
        gemm.rows(_dev_array(dev, a), _dev_array(dev, b), c, row0, rows, n, k, trans_b=trans_b,
                  accumulate=acc)
        got = dev.to_host(c, (total, n))
        want = c0.astype(np.float64)
        want = want.copy()
        prod = a[row0:row0 + rows].astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
        want[row0:row0 + rows] = prod + (want[row0:row0 + rows] if acc else 0.0)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.sqrt(k))
        outside = np.r_[0:row0, row0 + rows:total]
        assert np.array_equal(got[outside], c0[outside])


def test_gemm_rows_rejects_short_buffers():
    dev = get_device()
    small = dev.alloc(4 * 10)
    with pytest.raises(ValueError, match="a_buf holds 40 bytes"):
        get_gemm(dev).rows(small, small, small, 2, 2, 2, 3)


def test_pack_tiles_give_the_same_bits():
    """The packed tile is chosen by the device's vector width: it must not change results."""
    dev = get_device()
    rng = np.random.default_rng(3)
    m, n, k = 133, 70, 301
    a, b, c0 = (rng.normal(size=s).astype(np.float32) for s in ((m, k), (n, k), (m, n)))
    outs = []
    for tile in (PACK_TILE, PACK_TILE_NARROW, (5, 8)):
        gemm = Gemm(dev, pack_tile=tile)
        gemm.packing = True
        c = _dev_array(dev, c0)
        gemm.gemm(_dev_array(dev, a), _dev_array(dev, b), c, m, n, k, trans_b=True,
                  accumulate=True)
        outs.append(dev.to_host(c, (m, n)))
    assert all(np.array_equal(outs[0], o) for o in outs[1:])
    wide = dev.cl_device.native_vector_width_float >= 16
    assert get_gemm(dev).pack_tile == (PACK_TILE if wide else PACK_TILE_NARROW)


# ---- kernels/tpm.cl --------------------------------------------------------------------------
def _np_softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("heads,length", [(3, 7), (1, 33), (2, 40)])
def test_attn_kernels_against_numpy(heads, length):
    dev = get_device()
    rng = np.random.default_rng(heads)
    steps, batch, t = 3, 4, 1
    rows, n = steps * batch, heads * length
    s0, v, da = (rng.normal(size=(rows, n)) for _ in range(3))
    s, w, a = _dev_array(dev, s0), dev.alloc(4 * rows * n), dev.alloc(4 * rows * n)
    vb = _dev_array(dev, v)
    group = 2  # each work-item takes 8 values at a time, the first one also the tail
    launch(dev, "tpm.cl", "tpm_attn_fwd", (group, heads, batch), s, vb, w, a, i32(t),
           i32(length), local_size=(group, 1, 1))
    blk = slice(t * batch, (t + 1) * batch)
    u = np.tanh(s0[blk])
    w_np = _np_softmax(u.reshape(batch, heads, length)).reshape(batch, n)
    got_u, got_w, got_a = (dev.to_host(x, (rows, n))[blk] for x in (s, w, a))
    np.testing.assert_allclose(got_u, u, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got_w, w_np, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got_a, w_np * v[blk], rtol=1e-5, atol=1e-7)
    dv, ds = dev.alloc(4 * rows * n), dev.alloc(4 * rows * n)
    launch(dev, "tpm.cl", "tpm_attn_bwd", (heads, batch), _dev_array(dev, da), vb, w, s, dv, ds,
           i32(t), i32(length))
    dw = (da[blk] * v[blk]).reshape(batch, heads, length)
    w3 = w_np.reshape(batch, heads, length)
    ds_np = (1 - u ** 2) * (w3 * (dw - (dw * w3).sum(-1, keepdims=True))).reshape(batch, n)
    np.testing.assert_allclose(dev.to_host(dv, (rows, n))[blk], da[blk] * w_np, rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_allclose(dev.to_host(ds, (rows, n))[blk], ds_np, rtol=1e-4, atol=1e-6)


def _sig(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("hidden", [5, 13, 16])  # scalar tail only, vector + tail, vector
def test_cell_kernels_against_numpy(hidden):
    dev = get_device()
    rng = np.random.default_rng(hidden)
    steps, batch = 3, 2
    grid = (-(-hidden // 8), batch)
    rows = steps * batch
    z = rng.normal(size=(rows, 4 * hidden))
    gates, c_cur, h_cur, c_prev, h_prev = (dev.alloc(4 * rows * w) for w in
                                           (4 * hidden, hidden, hidden, hidden, hidden))
    zb = _dev_array(dev, z)
    for t in range(steps):
        launch(dev, "tpm.cl", "tpm_cell_fwd", grid, zb, gates, c_cur, h_cur, c_prev, h_prev,
               i32(t), i32(steps), i32(hidden))
    c, hs, cs, acts = np.zeros((batch, hidden)), [], [], []
    for t in range(steps):
        i, f, g, o = np.split(z[t * batch:(t + 1) * batch], 4, axis=1)
        i, f, g, o = _sig(i), _sig(f), np.tanh(g), _sig(o)
        c = f * c + i * g
        hs.append(o * np.tanh(c))
        cs.append(c)
        acts.append(np.concatenate([i, f, g, o], axis=1))
    h_np, c_np = np.concatenate(hs), np.concatenate(cs)
    np.testing.assert_allclose(dev.to_host(h_cur, (rows, hidden)), h_np, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dev.to_host(c_cur, (rows, hidden)), c_np, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dev.to_host(gates, (rows, 4 * hidden)), np.concatenate(acts),
                               rtol=1e-5, atol=1e-6)
    # "prev" layout: row block t+1 holds step t's state; block 0 is not written
    np.testing.assert_allclose(dev.to_host(h_prev, (rows, hidden))[batch:], h_np[:-batch],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dev.to_host(c_prev, (rows, hidden))[batch:], c_np[:-batch],
                               rtol=1e-5, atol=1e-6)
    # backward: dh_cur and dh_next per step, dc carried through the "prev" dc buffer
    dh_cur, dh_next = rng.normal(size=(rows, hidden)), rng.normal(size=(rows, hidden))
    dc, dz = dev.alloc(4 * rows * hidden), dev.alloc(4 * rows * 4 * hidden)
    dcb, dnb = _dev_array(dev, dh_cur), _dev_array(dev, dh_next)
    for t in reversed(range(steps)):
        launch(dev, "tpm.cl", "tpm_cell_bwd", grid, dcb, dnb, gates, c_cur, dc, dz, i32(t),
               i32(steps), i32(hidden))
    dc_np, want = np.zeros((batch, hidden)), [None] * steps
    for t in reversed(range(steps)):
        blk = slice(t * batch, (t + 1) * batch)
        i, f, g, o = np.split(np.concatenate(acts)[blk], 4, axis=1)
        dh = dh_cur[blk] + (dh_next[(t + 1) * batch:(t + 2) * batch] if t + 1 < steps else 0)
        cp = c_np[(t - 1) * batch:t * batch] if t else 0.0
        tc = np.tanh(c_np[blk])
        dcv = dc_np + dh * o * (1 - tc ** 2)
        want[t] = np.concatenate([dcv * g * i * (1 - i), dcv * cp * f * (1 - f),
                                  dcv * i * (1 - g ** 2), dh * tc * o * (1 - o)], axis=1)
        dc_np = dcv * f
    np.testing.assert_allclose(dev.to_host(dz, (rows, 4 * hidden)), np.concatenate(want),
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("rows,cols", [(37, 5), (16, 48), (3, 40), (70, 33)])
def test_tiled_transpose_kernel(rows, cols):
    dev = get_device()
    a = np.random.default_rng(rows).normal(size=(rows, cols)).astype(np.float32)
    out = dev.alloc(4 * rows * cols)
    launch(dev, "shape.cl", "transpose2d_tiled", (-(-cols // 16) * 16, -(-rows // 16) * 16),
           _dev_array(dev, a), out, i32(rows), i32(cols), local_size=(16, 16))
    assert np.array_equal(dev.to_host(out, (cols, rows)), a.T)


def test_bias_rows_kernel():
    dev = get_device()
    bias = np.arange(7, dtype=np.float32)
    out = dev.alloc(4 * 3 * 7)
    launch(dev, "tpm.cl", "tpm_bias_rows", (7, 3), _dev_array(dev, bias), out)
    assert np.array_equal(dev.to_host(out, (3, 7)), np.tile(bias, (3, 1)))


# ---- the fused recurrence against the per-step graph of ops ---------------------------------
def _per_step_graph(layer: TPM, xs: Tensor) -> Tensor:
    """The TPM's sequence output built step by step from the layer's generic ops (its
    stateful step with a differentiable state), the former sequence implementation."""
    steps, batch, n = xs.shape
    pre = layer._precompute(ops.reshape(xs, (steps * batch, n)))
    state, outs = None, []
    for t in range(steps):
        y, state = layer._step(pre, t, batch, state)
        outs.append(ops.reshape(y, (1, batch * layer.hidden)))
    seq = outs[0] if steps == 1 else ops.concat(outs)
    return ops.reshape(seq, (steps, batch, layer.hidden))


@pytest.mark.parametrize("steps,batch", [(5, 8), (4, 3), (1, 9)])
def test_fused_recurrence_matches_the_per_step_graph(steps, batch):
    layer = TPM(bars=10, n_vars=3, hidden=16, levels=(2, 1), seed=5)
    model = Model(layer, name=f"tpm_fused_{steps}_{batch}")
    rng = np.random.default_rng(steps * 10 + batch)
    model.load_parameters({k: rng.normal(scale=0.4, size=v.shape).astype(np.float32)
                           for k, v in model.named_parameters().items()})
    x = rng.normal(size=(steps, batch, 30)).astype(np.float32)
    seed = rng.normal(size=(steps, batch, 16)).astype(np.float32)
    results = []
    for build in (layer.forward, lambda t: _per_step_graph(layer, t)):
        model.zero_grad()
        xt = Tensor.from_numpy(x, requires_grad=True)
        y = build(xt)
        y.backward(seed)
        results.append((y.numpy(), model.named_gradients(), xt.grad()))
    (y1, g1, dx1), (y2, g2, dx2) = results
    np.testing.assert_allclose(y1, y2, rtol=1e-5, atol=1e-6)
    for name in g1:
        scale = max(np.abs(g2[name]).max(), 1e-3)
        np.testing.assert_allclose(g1[name], g2[name], rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=name)
    np.testing.assert_allclose(dx1, dx2, rtol=1e-4, atol=1e-5 * np.abs(dx2).max())
