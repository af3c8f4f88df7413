"""ops.linear with a graph (training): Gemm.dense forward, one fused activation + bias backward
launch (``bias_act_bwd``), then the two products.

Its forward and gradients must be bit-identical to the composition it replaces (matmul, then
bias_add, then activation, each with its own backward), on the direct and the packed GEMM
paths, and agree with float64 finite differences of a numpy forward.
"""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import assert_close, exact32, fd_grads

from neurofx.nn import Tensor, get_device, ops
from neurofx.nn.gemm import get_gemm

KINDS = ["none", "tanh", "sigmoid", "relu", "leaky_relu", "softplus"]


def _np_act(kind):
    return {"none": lambda z: z, "tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
            "relu": lambda z: np.maximum(z, 0),
            "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
            "softplus": lambda z: np.log1p(np.exp(z))}[kind]


def _run(fn, x, w, b, r):
    """fn's output and the gradients of x, w (and b) of sum(out * r)."""
    ts = [Tensor.from_numpy(a, requires_grad=True) for a in (x, w, b) if a is not None]
    out = fn(*ts)
    y = out.numpy()
    out.backward(r)
    return [y] + [t.grad() for t in ts]


def _check_fd(engine_fn, numpy_fn, shapes, seed):
    """Forward against numpy float64, gradients of sum(out * R) against central differences."""
    rng = np.random.default_rng(seed)
    arrays = [exact32(rng.normal(size=s)) for s in shapes]
    tensors = [Tensor.from_numpy(a, requires_grad=True) for a in arrays]
    out = engine_fn(*tensors)
    expected = numpy_fn(*arrays)
    assert_close(out.numpy(), expected, 1e-4, what="forward")
    r = exact32(rng.normal(size=expected.shape))
    out.backward(r.astype(np.float32))
    for i, (t, g) in enumerate(zip(tensors, fd_grads(numpy_fn, arrays, r), strict=True)):
        assert_close(t.grad(), g, 1e-3, floor=1e-3, what=f"grad of input {i}")


def _composed(kind, with_bias):
    def fn(x, w, b=None):
        y = ops.matmul(x, w, trans_b=True)
        y = ops.bias_add(y, b) if with_bias else y
        return ops.activation(y, kind)
    return fn


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("m,k,n", [(1, 1080, 256), (5, 19, 7), (32, 256, 216), (13, 9, 17),
                                   (130, 70, 66)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("packing", [None, True, False])
def test_linear_training_bit_identical_to_composition(kind, m, k, n, bias, packing):
    rng = np.random.default_rng(m * 7 + n * 3 + k)
    x = rng.normal(size=(m, k)).astype(np.float32)
    w = (rng.normal(size=(n, k)) / np.sqrt(k)).astype(np.float32)
    b = rng.normal(size=(n,)).astype(np.float32) if bias else None
    r = rng.normal(size=(m, n)).astype(np.float32)
    gemm = get_gemm(get_device())
    old, gemm.packing = gemm.packing, packing
    try:
        fused = _run(lambda *t: ops.linear(t[0], t[1], t[2] if bias else None, kind), x, w, b, r)
        composed = _run(_composed(kind, bias), x, w, b, r)
    finally:
        gemm.packing = old
    assert len(fused) == len(composed) == (4 if bias else 3)
    for name, got, ref in zip(("y", "dx", "dw", "db"), fused, composed, strict=False):
        assert np.array_equal(got, ref), (name, np.abs(got - ref).max())


@pytest.mark.parametrize("kind", KINDS)
def test_linear_training_against_finite_differences(kind):
    act = _np_act(kind)
    _check_fd(lambda x, w, b: ops.linear(x, w, b, kind), lambda x, w, b: act(x @ w.T + b),
              [(4, 6), (9, 6), (9,)], seed=KINDS.index(kind))
    _check_fd(lambda x, w: ops.linear(x, w, None, kind), lambda x, w: act(x @ w.T),
              [(3, 5), (10, 5)], seed=7)


def test_linear_training_frozen_parents():
    """Only the parents that require a gradient get one; the others are read, not written."""
    rng = np.random.default_rng(3)
    x, w, b = (rng.normal(size=s).astype(np.float32) for s in ((6, 11), (9, 11), (9,)))
    r = rng.normal(size=(6, 9)).astype(np.float32)
    for grads in ((True, False, False), (False, True, False), (False, False, True)):
        ts = [Tensor.from_numpy(a, requires_grad=g) for a, g in zip((x, w, b), grads,
                                                                     strict=True)]
        ops.linear(*ts, "tanh").backward(r)
        dz = r * (1 - np.tanh(x.astype(np.float64) @ w.T + b) ** 2)
        expected = (dz @ w, dz.T @ x, dz.sum(0))
        for t, g, e in zip(ts, grads, expected, strict=True):
            if g:
                np.testing.assert_allclose(t.grad(), e, rtol=1e-4, atol=1e-4)
            else:
                assert t.grad() is None


# ---- the packed path's epilogue: bias_act_fwd, 8 elements per work-item, tanh8 --------------
_REF_SRC = r'''
#include "elementwise.cl"
__kernel void ref_bias_act(__global const float* x, __global const float* bias,
                           __global float* y, const int n, const int has_bias, const int act) {
    const int i = get_global_id(0);  /* the one-element-per-work-item kernel it replaced */
    y[i] = act_apply(has_bias ? x[i] + bias[i % n] : x[i], act);
}
__kernel void tanh_scalar(const uint base, const uint stride, __global float* y) {
    const uint i = get_global_id(0);
    y[i] = tanh(as_float(base + i * stride));
}
__kernel void tanh_vec(const uint base, const uint stride, __global float* y) {
    const uint i = 8 * get_global_id(0);
    const uint8 lanes = (uint8)(0, 1, 2, 3, 4, 5, 6, 7);
    *(__global float8u*)(y + i) = tanh8(as_float8(base + ((uint8)(i) + lanes) * stride));
}
'''


@pytest.fixture(scope="module")
def ref_program():
    import pyopencl as cl

    from neurofx.nn.device import kernel_dir
    dev = get_device()
    return cl.Program(dev.context, _REF_SRC).build(options=["-I", str(kernel_dir())])


def test_tanh8_matches_scalar_tanh_bits(ref_program):
    """tanh8 reproduces the device's scalar tanh() bit for bit (all 2^32 inputs were checked
    on pip PoCL 3.0, AVX2); here a sweep of every 257th bit pattern (both signs, zeros,
    subnormals, the 0.9 / 1 / 8.3177 / 52 switch points, inf, NaN)."""
    import pyopencl as cl
    dev = get_device()
    stride, count = 257, (1 << 32) // 257 // 8 * 8
    outs = []
    for name, gsize in (("tanh_scalar", count), ("tanh_vec", count // 8)):
        buf = dev.alloc(4 * count)
        cl.Kernel(ref_program, name)(dev.queue, (gsize,), None, np.uint32(0), np.uint32(stride),
                                     buf)
        outs.append(dev.to_host(buf, (count,)))
    a, b = outs
    same = (a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))
    assert same.all(), np.nonzero(~same)[0][:5] * stride
    from neurofx.nn.launch import i32, launch
    edges = np.array([0.0, -0.0, 1e-40, 0.9, np.nextafter(np.float32(0.9), 1), 1.0,
                      np.nextafter(np.float32(1), 2), 8.317766, 52.0, 60.0, np.inf, -np.inf,
                      np.nan], np.float32)
    xb, yb, rb = dev.to_device(np.resize(edges, 16)), dev.alloc(64), dev.alloc(64)
    launch(dev, "elementwise.cl", "bias_act_fwd", 2, xb, xb, yb, i32(1), i32(0), i32(1), i32(16))
    cl.Kernel(ref_program, "ref_bias_act")(dev.queue, (16,), None, xb, xb, rb, i32(1), i32(0),
                                           i32(1))
    got, ref = dev.to_host(yb, (16,)), dev.to_host(rb, (16,))
    assert np.array_equal(got, ref, equal_nan=True)
    assert np.allclose(got, np.tanh(np.resize(edges, 16)), rtol=2e-7, atol=0, equal_nan=True)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rows,n", [(3, 5), (7, 8), (5, 13), (2, 256), (1, 3), (9, 1)])
def test_bias_act_fwd_bit_identical_to_per_element_kernel(ref_program, kind, rows, n):
    import pyopencl as cl

    from neurofx.nn.launch import i32, launch
    from neurofx.nn.ops import ACTIVATIONS
    dev = get_device()
    rng = np.random.default_rng(rows * 100 + n)
    x = (rng.normal(size=rows * n) * 4).astype(np.float32)
    b = rng.normal(size=n).astype(np.float32)
    act = ACTIVATIONS[kind]
    for has_bias in (0, 1):
        xb, bb = dev.to_device(x), dev.to_device(b)
        ref_buf, out = dev.alloc(4 * x.size), dev.to_device(x)  # in place, as Gemm.dense does
        cl.Kernel(ref_program, "ref_bias_act")(dev.queue, (x.size,), None, xb, bb, ref_buf,
                                               i32(n), i32(has_bias), i32(act))
        launch(dev, "elementwise.cl", "bias_act_fwd", -(-x.size // 8), out, bb, out, i32(n),
               i32(has_bias), i32(act), i32(x.size))
        ref, got = dev.to_host(ref_buf, x.shape), dev.to_host(out, x.shape)
        assert np.array_equal(got.view(np.uint32), ref.view(np.uint32)), (kind, has_bias)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("m,n,k", [(1, 7, 5), (33, 256, 100), (40, 13, 1080)])
def test_dense_split_epilogue_same_bits(kind, m, n, k):
    """Gemm.dense(split=True): the direct product, then bias_act_fwd; the same bits as the
    product's own epilogue."""
    from neurofx.nn.ops import ACTIVATIONS
    dev = get_device()
    gemm = get_gemm(dev)
    rng = np.random.default_rng(m + n + k)
    x, w, b = (rng.normal(size=s).astype(np.float32) for s in ((m, k), (n, k), (n,)))
    xb, wb, bb = dev.to_device(x), dev.to_device(w / np.sqrt(k)), dev.to_device(b)
    outs = []
    for split in (False, True):
        yb = dev.alloc(4 * m * n)
        gemm.dense(xb, wb, yb, m, n, k, bb, ACTIVATIONS[kind], split=split)
        outs.append(dev.to_host(yb, (m, n)))
    assert np.array_equal(outs[0].view(np.uint32), outs[1].view(np.uint32))


def test_linear_input_gradient_with_several_consumers():
    """The first backward to reach x writes its gradient, the later ones add to it."""
    rng = np.random.default_rng(5)
    x, w1, w2 = (rng.normal(size=s).astype(np.float32) for s in ((6, 11), (9, 11), (9, 11)))
    r = rng.normal(size=(6, 9)).astype(np.float32)
    xt = Tensor.from_numpy(x, requires_grad=True)
    w1t, w2t = Tensor.from_numpy(w1), Tensor.from_numpy(w2)
    out = ops.add(ops.add(ops.linear(xt, w1t, None, "tanh"), ops.linear(xt, w2t, None, "tanh")),
                  ops.slice_cols(xt, 0, 9))
    out.backward(r)
    x64 = x.astype(np.float64)
    expected = ((r * (1 - np.tanh(x64 @ w1.T) ** 2)) @ w1
                + (r * (1 - np.tanh(x64 @ w2.T) ** 2)) @ w2)
    expected[:, :9] += r
    np.testing.assert_allclose(xt.grad(), expected, rtol=1e-4, atol=1e-4)
