"""Every autograd op against an independent numpy float64 forward and float64 central finite
differences of L = sum(out * R) for a fixed random R."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import assert_close, exact32, fd_grads

from neurofx.nn import Tensor, ops


def check_op(engine_fn, numpy_fn, shapes, seed=0, rtol=1e-4, positive=False):
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=s) for s in shapes]
    if positive:
        arrays = [np.abs(a) + 0.5 for a in arrays]
    arrays = [exact32(a) for a in arrays]
    tensors = [Tensor.from_numpy(a, requires_grad=True) for a in arrays]
    out = engine_fn(*tensors)
    expected = numpy_fn(*arrays)
    assert_close(out.numpy(), expected, rtol, what="forward")
    r = exact32(rng.normal(size=expected.shape))
    out.backward(r.astype(np.float32))
    for k, (t, g) in enumerate(zip(tensors, fd_grads(numpy_fn, arrays, r), strict=True)):
        assert_close(t.grad(), g, rtol * 10, floor=1e-3, what=f"grad of input {k}")


def _np_act(kind):
    return {
        "tanh": np.tanh,
        "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
        "relu": lambda x: np.maximum(x, 0),
        "leaky_relu": lambda x: np.where(x > 0, x, 0.01 * x),
        "softplus": lambda x: np.log1p(np.exp(x)),
    }[kind]


@pytest.mark.parametrize("kind", ["tanh", "sigmoid", "relu", "leaky_relu", "softplus"])
@pytest.mark.parametrize("shape", [(1,), (3, 7), (1081,)])
def test_activations(kind, shape):
    check_op(lambda x: ops.activation(x, kind), _np_act(kind), [shape], seed=len(shape))


def test_activation_none_is_identity_and_unknown_rejected():
    x = Tensor.from_numpy(np.arange(3.0))
    assert ops.activation(x, "none") is x
    with pytest.raises(ValueError, match="unknown activation 'gelu'; valid: none, tanh"):
        ops.activation(x, "gelu")


@pytest.mark.parametrize("shape", [(1,), (3, 5), (2, 1081)])
def test_add_sub_mul_scale(shape):
    check_op(ops.add, lambda a, b: a + b, [shape, shape])
    check_op(ops.sub, lambda a, b: a - b, [shape, shape], seed=1)
    check_op(ops.mul, lambda a, b: a * b, [shape, shape], seed=2)
    check_op(lambda a: ops.scale(a, -2.5), lambda a: -2.5 * a, [shape], seed=3)


@pytest.mark.parametrize("rows,n", [(1, 1), (3, 7), (4, 1081)])
def test_bias_add(rows, n):
    check_op(ops.bias_add, lambda x, b: x + b, [(rows, n), (n,)])


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (3, 5, 7), (1, 1081, 3), (7, 1, 2), (33, 65, 17)])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_all_transposes(m, k, n, ta, tb):
    sa = (k, m) if ta else (m, k)
    sb = (n, k) if tb else (k, n)

    def ref(a, b):
        return (a.T if ta else a) @ (b.T if tb else b)

    if m * k * n > 2000:  # finite differences over 1081-wide inputs are slow: forward + one fd
        rng = np.random.default_rng(0)
        a, b = rng.normal(size=sa), rng.normal(size=sb)
        ta_, tb_ = Tensor.from_numpy(a, True), Tensor.from_numpy(b, True)
        out = ops.matmul(ta_, tb_, ta, tb)
        np.testing.assert_allclose(out.numpy(), ref(a, b), rtol=1e-4, atol=1e-4)
        r = rng.normal(size=(m, n))
        out.backward(r.astype(np.float32))
        ga = (r @ (b.T if tb else b).T)
        gb = ((a.T if ta else a).T @ r)
        np.testing.assert_allclose(ta_.grad(), ga.T if ta else ga, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(tb_.grad(), gb.T if tb else gb, rtol=1e-4, atol=1e-3)
        return
    check_op(lambda a, b: ops.matmul(a, b, ta, tb), ref, [sa, sb])


def test_linear_matches_torch_convention():
    check_op(ops.linear, lambda x, w, b: x @ w.T + b, [(4, 6), (3, 6), (3,)])


@pytest.mark.parametrize("heads,width", [(1, 5), (3, 12), (9, 1080)])
def test_softmax_heads(heads, width):
    def ref(x):
        blocks = x.reshape(x.shape[0], heads, width // heads)
        e = np.exp(blocks - blocks.max(-1, keepdims=True))
        return (e / e.sum(-1, keepdims=True)).reshape(x.shape)

    rows = 2 if width < 1000 else 1
    if width >= 1000:  # forward + analytic backward only (fd over 1080 inputs is slow)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(rows, width))
        t = Tensor.from_numpy(x, True)
        out = ops.softmax(t, heads)
        y = ref(x)
        np.testing.assert_allclose(out.numpy(), y, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out.numpy().reshape(heads, -1).sum(1), 1.0, rtol=1e-5)
        return
    check_op(lambda x: ops.softmax(x, heads), ref, [(rows, width)])


def test_softmax_rejects_bad_heads():
    with pytest.raises(ValueError, match="4 heads do not divide"):
        ops.softmax(Tensor.from_numpy(np.zeros((1, 6))), 4)


def test_concat_split_slice():
    check_op(lambda a, b, c: ops.concat([a, b, c]), lambda a, b, c: np.concatenate([a, b, c], -1),
             [(3, 2), (3, 1), (3, 5)])
    check_op(lambda a: ops.slice_cols(a, 2, 5), lambda a: a[:, 2:5], [(4, 7)])
    check_op(lambda a: ops.concat(ops.split(a, [1, 4, 2])[::-1]),
             lambda a: np.concatenate([a[:, 5:], a[:, 1:5], a[:, :1]], -1), [(2, 7)])


def test_transpose_and_reshape():
    check_op(ops.transpose, lambda a: a.T, [(3, 5)])
    check_op(lambda a: ops.transpose(ops.reshape(a, (5, 3))), lambda a: a.reshape(5, 3).T,
             [(3, 5)])
    with pytest.raises(ValueError, match="cannot view"):
        ops.reshape(Tensor.from_numpy(np.zeros(6)), (4, 2))


def test_reductions_and_mse():
    check_op(lambda a: ops.sum_all(a), lambda a: np.array([a.sum()]), [(3, 7)])
    check_op(lambda a: ops.mean(a), lambda a: np.array([a.mean()]), [(1081,)])
    rng = np.random.default_rng(5)
    target = rng.normal(size=(4, 3))
    check_op(lambda p: ops.mse_loss(p, Tensor.from_numpy(target)),
             lambda p: np.array([np.mean((p - target) ** 2)]), [(4, 3)])


def test_gradients_accumulate_across_backward_calls():
    x = Tensor.from_numpy(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    for _ in range(3):
        ops.sum_all(ops.mul(x, x)).backward()
    np.testing.assert_allclose(x.grad(), 3 * 2 * np.array([1.0, 2.0, 3.0]))


def test_dropout_is_reproducible_and_scaled():
    x = Tensor.from_numpy(np.ones(10000), requires_grad=True)
    a = ops.dropout(x, 0.3, seed=7, counter=1).numpy()
    b = ops.dropout(x, 0.3, seed=7, counter=1).numpy()
    c = ops.dropout(x, 0.3, seed=7, counter=2).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    kept = a != 0
    np.testing.assert_allclose(a[kept], 1 / 0.7, rtol=1e-6)
    assert abs(kept.mean() - 0.7) < 0.02  # 10,000 Bernoulli(0.7): sd 0.0046


@pytest.mark.parametrize("kind", ["none", "tanh", "sigmoid", "relu", "leaky_relu", "softplus"])
@pytest.mark.parametrize("m,k,n", [(1, 1080, 256), (5, 19, 7), (130, 70, 66)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("packing", [None, True])
def test_fused_dense_inference_against_numpy(kind, m, k, n, bias, packing):
    """linear(..., activation) without a graph is one GEMM with a bias + activation epilogue
    (or the packed GEMM + bias_act_fwd): numpy float64 forward, and the same values as the
    three-kernel path with a graph (whose gradients test_matmul / test_bias_add /
    test_activations check)."""
    from neurofx.nn import get_device, no_grad
    from neurofx.nn.gemm import get_gemm

    rng = np.random.default_rng(m * n + k)
    x, w, b = (exact32(rng.normal(size=s)) for s in ((m, k), (n, k), (n,)))
    gemm = get_gemm(get_device())
    old, gemm.packing = gemm.packing, packing
    try:
        xt, wt, bt = (Tensor.from_numpy(a, requires_grad=True) for a in (x, w, b))
        with no_grad():
            fused = ops.linear(xt, wt, bt if bias else None, kind).numpy()
        graph = ops.linear(xt, wt, bt if bias else None, kind).numpy()
    finally:
        gemm.packing = old
    z = x @ w.T + (b if bias else 0.0)
    expected = z if kind == "none" else _np_act(kind)(z)
    assert_close(fused, expected, 1e-4, what="fused forward")
    assert np.allclose(fused, graph, rtol=1e-6, atol=1e-6)
