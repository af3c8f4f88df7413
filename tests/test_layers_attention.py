"""Grouped-KV multi-head attention, LayerNorm and the MLCrossAttentionMLKV block against numpy
float64 references and finite differences; KV grouping against an equivalent standard MHA."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from neurofx.nn import Model, Tensor, build_module
from neurofx.nn.layers.attention import LayerNorm, MLCrossAttentionMLKV, MultiHeadAttention
from neurofx.nn.ops.attention import attention, batch_transpose

sys.path.insert(0, str(Path(__file__).parent))
from gradcheck import assert_close, check_module, exact32  # noqa: E402

EPS = 1e-5


def randomize(model, seed, scale=0.5):
    rng = np.random.default_rng(seed)
    model.load_parameters({k: rng.normal(scale=scale, size=v.shape).astype(np.float32)
                           for k, v in model.named_parameters().items()})


def np_softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_attention(q, k, v, heads, kv_heads):
    """Standard MHA after repeating each KV head for its group (torch repeat_interleave)."""
    b, tq, _ = q.shape
    tk = k.shape[1]
    group = heads // kv_heads
    q4 = q.reshape(b, tq, heads, -1).transpose(0, 2, 1, 3)  # (B, H, Tq, dk)
    k4 = np.repeat(k.reshape(b, tk, kv_heads, -1), group, axis=2).transpose(0, 2, 1, 3)
    v4 = np.repeat(v.reshape(b, tk, kv_heads, -1), group, axis=2).transpose(0, 2, 1, 3)
    p = np_softmax(q4 @ k4.transpose(0, 1, 3, 2) / np.sqrt(q4.shape[-1]))
    return (p @ v4).transpose(0, 2, 1, 3).reshape(b, tq, -1)


def np_mha(p, pre, x, k, v, heads, kv_heads):
    q = x @ p[pre + "weight_q"].T + p[pre + "bias_q"]
    o = np_attention(q, k, v, heads, kv_heads)
    return o @ p[pre + "weight_o"].T + p[pre + "bias_o"]


def np_kv(p, pre, c):
    return (c @ p[pre + "weight_k"].T,
            c @ p[pre + "weight_v"].T + p[pre + "bias_v"])


def np_ln(z, g, b):
    m = z.mean(axis=-1, keepdims=True)
    var = ((z - m) ** 2).mean(axis=-1, keepdims=True)
    return g * (z - m) / np.sqrt(var + EPS) + b


def np_block(p, x, c, *, heads, kv_heads, layers, kv_step):
    h = x
    for i in range(layers):
        if i % kv_step == 0:
            k, v = np_kv(p, f"kv.{i // kv_step}.", c)
        pre = f"blocks.{i}."
        h = np_ln(h + np_mha(p, pre + "attn.", h, k, v, heads, kv_heads),
                  p[pre + "norm1.gamma"], p[pre + "norm1.beta"])
        z = h @ p[pre + "ffn1.weight"].T + p[pre + "ffn1.bias"]
        f = np.where(z > 0, z, 0.01 * z) @ p[pre + "ffn2.weight"].T + p[pre + "ffn2.bias"]
        h = np_ln(h + f, p[pre + "norm2.gamma"], p[pre + "norm2.beta"])
    return h


# ---- the op -------------------------------------------------------------------------------
@pytest.mark.parametrize("b,tq,tk,heads,kv_heads,dk,dv", [
    (2, 2, 9, 4, 2, 4, 4), (1, 1, 9, 8, 4, 32, 32), (3, 5, 3, 6, 1, 2, 3), (2, 3, 4, 2, 2, 5, 5),
])
def test_attention_op_forward_and_gradients(b, tq, tk, heads, kv_heads, dk, dv):
    rng = np.random.default_rng(b * 100 + tq)
    q = exact32(rng.normal(size=(b, tq, heads * dk)))
    k = exact32(rng.normal(size=(b, tk, kv_heads * dk)))
    v = exact32(rng.normal(size=(b, tk, kv_heads * dv)))
    ts = [Tensor.from_numpy(a, requires_grad=True) for a in (q, k, v)]
    out = attention(*ts, heads, kv_heads)
    assert_close(out.numpy(), np_attention(q, k, v, heads, kv_heads), 1e-5, what="forward")
    r = exact32(rng.normal(size=out.shape))
    out.backward(r.astype(np.float32))
    eps = 1e-6
    for t, a, name in zip(ts, (q, k, v), "qkv", strict=True):
        num = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            args = {"q": q, "k": k, "v": v}
            plus, minus = a.copy(), a.copy()
            plus[idx] += eps
            minus[idx] -= eps
            args[name] = plus
            fp = np.sum(np_attention(args["q"], args["k"], args["v"], heads, kv_heads) * r)
            args[name] = minus
            fm = np.sum(np_attention(args["q"], args["k"], args["v"], heads, kv_heads) * r)
            num[idx] = (fp - fm) / (2 * eps)
        assert_close(t.grad(), num, 1e-4, floor=1e-3, what=f"d/d {name}")


def test_attention_op_rejects_bad_grouping():
    t = Tensor.from_numpy(np.zeros((1, 2, 12), np.float32))
    with pytest.raises(ValueError, match="kv_heads=4 must divide heads=6"):
        attention(t, t, t, 6, 4)


def test_batch_transpose_forward_and_backward():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    t = Tensor.from_numpy(x, requires_grad=True)
    y = batch_transpose(t)
    np.testing.assert_array_equal(y.numpy(), x.transpose(0, 2, 1))
    r = np.random.default_rng(0).normal(size=(2, 4, 3)).astype(np.float32)
    y.backward(r)
    np.testing.assert_array_equal(t.grad(), r.transpose(0, 2, 1))


# ---- layers -------------------------------------------------------------------------------
def test_layer_norm_with_residual():
    class Wrap(LayerNorm):
        def forward(self, x, r):
            return super().forward(x, r)

    model = Model(Wrap(6), name="ln")
    randomize(model, 1)
    model.load_parameters({"gamma": 1 + model.named_parameters()["gamma"],
                           "beta": model.named_parameters()["beta"]})
    rng = np.random.default_rng(2)
    x, r = rng.normal(size=(5, 6)), rng.normal(size=(5, 6))
    check_module(model, [x, r], lambda p, x, r: np_ln(x + r, p["gamma"], p["beta"]), seed=3)


@pytest.mark.parametrize("heads,kv_heads,self_attn", [(4, 2, False), (4, 4, False), (4, 1, True)])
def test_multi_head_attention_layer(heads, kv_heads, self_attn):
    """2 query tokens x 8 dim, context 9 tokens x 24, key size 4 (self-attention: context = x)."""
    kv_dim, kv_tokens = (8, 2) if self_attn else (24, 9)
    layer = MultiHeadAttention(8, heads, 4, kv_heads, kv_dim, q_tokens=2, kv_tokens=kv_tokens,
                               seed=4)
    model = Model(layer, name=f"mha{heads}{kv_heads}{self_attn}")
    randomize(model, 5)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 2, 8))

    def ref(p, x, c=None):
        c = x if c is None else c
        k, v = np_kv(p, "kv.", c)
        return np_mha(p, "", x, k, v, heads, kv_heads)

    inputs = [x] if self_attn else [x, rng.normal(size=(2, 9, 24))]
    check_module(model, inputs, ref, seed=7)
    # flat (B, tokens*dim) inputs give the same numbers, flat
    flat = model.predict(*(a.reshape(2, -1) for a in inputs))
    assert flat.shape == (2, 16)
    assert_close(flat, ref(model.named_parameters(), *(exact32(a) for a in inputs))
                 .reshape(2, 16), 1e-5)


def test_grouped_kv_equals_standard_mha_with_duplicated_heads():
    """GQA (4 q heads, 2 KV heads) == standard MHA (4 KV heads) whose KV head h copies GQA
    head h // 2; the GQA K/V weight gradients are the group sums of the MHA ones."""
    gqa = Model(MultiHeadAttention(8, 4, 4, 2, 24, q_tokens=2, kv_tokens=9, seed=1), name="gqa")
    mha = Model(MultiHeadAttention(8, 4, 4, 4, 24, q_tokens=2, kv_tokens=9, seed=2), name="mha")
    randomize(gqa, 8)
    p = gqa.named_parameters()
    dup = dict(p)
    for w in ("weight_k", "weight_v", "bias_v"):
        a = p[f"kv.{w}"]
        heads = a.reshape(2, 4, *a.shape[1:])  # (KV head, key rows, ...)
        dup[f"kv.{w}"] = np.repeat(heads, 2, axis=0).reshape(16, *a.shape[1:])
    mha.load_parameters(dup)
    rng = np.random.default_rng(9)
    x, c = rng.normal(size=(3, 2, 8)), rng.normal(size=(3, 9, 24))
    r = rng.normal(size=(3, 2, 8)).astype(np.float32)
    grads = []
    for model in (gqa, mha):
        model.zero_grad()
        out = model.forward(Tensor.from_numpy(x), Tensor.from_numpy(c))
        out.backward(r)
        grads.append((out.numpy(), model.named_gradients()))
    (ya, ga), (yb, gb) = grads
    np.testing.assert_allclose(ya, yb, rtol=1e-5, atol=1e-6)
    for w in ("weight_q", "bias_q", "weight_o", "bias_o"):
        np.testing.assert_allclose(ga[w], gb[w], rtol=1e-4, atol=1e-6)
    for w in ("weight_k", "weight_v", "bias_v"):
        g = gb[f"kv.{w}"]
        summed = g.reshape(2, 2, 4, *g.shape[1:]).sum(axis=1).reshape(ga[f"kv.{w}"].shape)
        np.testing.assert_allclose(ga[f"kv.{w}"], summed, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("layers,kv_step,transposed", [(2, 1, False), (3, 2, False),
                                                       (2, 2, True)])
def test_ml_cross_attention_block(layers, kv_step, transposed):
    """Brief shapes: 2 query tokens x 8, context 9 tokens x 24, 4 q heads, 2 KV heads, key 4."""
    block = MLCrossAttentionMLKV(q_dim=8, kv_dim=24, q_tokens=2, kv_tokens=9, heads=4,
                                 kv_heads=2, key_size=4, layers=layers, kv_step=kv_step,
                                 context_transposed=transposed, seed=3)
    assert len(block.kv) == -(-layers // kv_step)
    model = Model(block, name=f"mlkv{layers}{kv_step}{transposed}")
    randomize(model, 10, scale=0.4)
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2, 16))
    c = rng.normal(size=(2, 9, 24))
    c_in = c.transpose(0, 2, 1).reshape(2, 216) if transposed else c.reshape(2, 216)

    def ref(p, x, c_flat):
        ctx = (c_flat.reshape(2, 24, 9).transpose(0, 2, 1) if transposed
               else c_flat.reshape(2, 9, 24))
        y = np_block(p, x.reshape(2, 2, 8), ctx, heads=4, kv_heads=2, layers=layers,
                     kv_step=kv_step)
        return y.reshape(2, 16)

    check_module(model, [x, c_in], ref, seed=12, grad_rtol=2e-4)


def test_ml_cross_attention_seed_shapes_and_rebuild():
    """Actor shapes: 1 token x 32 embedding, context 9 variables x 24 horizon; defaults
    9 layers, 8 q heads, 4 KV heads, key 32; describe() rebuilds the same network."""
    block = MLCrossAttentionMLKV(seed=5)
    model = Model(block, name="actor_attn")
    specs = {s.name: s for s in model.store.specs}
    assert specs["kv.0.weight_k"].shape == (128, 24)
    assert specs["kv.0.weight_k"].n_blocks == 4      # one per KV head
    assert specs["kv.0.weight_v"].n_blocks == 128    # one per row
    assert specs["blocks.8.attn.weight_q"].n_blocks == 8
    assert specs["blocks.8.attn.weight_o"].n_blocks == 32
    assert specs["blocks.0.norm1.gamma"].n_blocks == 1
    assert len(block.kv) == 9 and len(block.blocks) == 9
    rng = np.random.default_rng(13)
    x, c = rng.normal(size=(3, 32)), rng.normal(size=(3, 216))
    y = model.predict(x, c)
    assert y.shape == (3, 32)
    ref = np_block({k: v.astype(np.float64) for k, v in model.named_parameters().items()},
                   exact32(x).reshape(3, 1, 32), exact32(c).reshape(3, 9, 24), heads=8,
                   kv_heads=4, layers=9, kv_step=1).reshape(3, 32)
    assert_close(y, ref, 1e-4)
    twin = Model(build_module(block.describe()), name="twin")
    twin.load_parameters(model.named_parameters())
    np.testing.assert_array_equal(twin.predict(x, c), y)


@pytest.mark.parametrize("kwargs,match", [
    ({"heads": 8, "kv_heads": 3}, "kv_heads=3 must divide heads=8"),
    ({"layers": 0}, "all sizes must be >= 1"),
    ({"ffn_activation": "gelu"}, "unknown ffn_activation 'gelu'"),
])
def test_ml_cross_attention_rejects_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLCrossAttentionMLKV(**kwargs)


def test_ml_cross_attention_rejects_wrong_context_shape():
    model = Model(MLCrossAttentionMLKV(q_dim=8, kv_dim=24, heads=4, kv_heads=2, key_size=4,
                                       layers=1), name="bad_ctx")
    with pytest.raises(ValueError, match=r"context must be \(B, 9, 24\) or \(B, 216\)"):
        model.predict(np.zeros((1, 8)), np.zeros((1, 200)))
