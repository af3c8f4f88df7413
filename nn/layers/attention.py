"""Attention layers: layer norm, multi-head attention with grouped key/value heads, and the
seed's multi-layer cross-attention block (CNeuronMLCrossAttentionMLKV)."""

from __future__ import annotations

import numpy as np

from .. import ops
from ..module import Dense, Module, child_seed, register, uniform_init
from ..ops.attention import attention, batch_transpose, layer_norm
from ..tensor import Parameter, Tensor


def _tokens(x: Tensor, tokens: int, dim: int, who: str, what: str) -> Tensor:
    """x (B, tokens*dim) or (B, tokens, dim) -> (B, tokens, dim) view."""
    if len(x.shape) == 2 and x.shape[1] == tokens * dim:
        return ops.reshape(x, (x.shape[0], tokens, dim))
    if len(x.shape) == 3 and x.shape[1:] == (tokens, dim):
        return x
    raise ValueError(f"{who}: {what} must be (B, {tokens}, {dim}) or (B, {tokens * dim}), "
                     f"got {x.shape}")



@register
class LayerNorm(Module):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta over the last dimension (n), per row;
    torch's LayerNorm. ``gamma`` (init 1), ``beta`` (init 0) are (n,).
    Adam-mini blocks: one for ``gamma``, one for ``beta``."""

    def __init__(self, n: int, eps: float = 1e-5):
        if n < 1 or eps <= 0:
            raise ValueError(f"LayerNorm: need n >= 1 and eps > 0, got n={n}, eps={eps}")
        self.n, self.eps = n, eps
        self.gamma = Parameter(np.ones(n, np.float32), "weight", n)
        self.beta = Parameter(np.zeros(n, np.float32), "bias", n)

    def config(self) -> dict:
        return {"n": self.n, "eps": self.eps}

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        """Normalise ``x`` (or ``x + residual``, one fused kernel)."""
        if x.shape[-1] != self.n:
            raise ValueError(f"LayerNorm({self.n}): input last dimension is {x.shape[-1]}")
        return layer_norm(x, self.gamma, self.beta, residual, self.eps)


class KVProjection(Module):
    """Keys and values of a context: ``k = c @ weight_k^T`` (B, Tk, Hkv*dk) and
    ``v = c @ weight_v^T + bias_v`` (B, Tk, Hkv*dv) from c (B, Tk, kv_dim).

    No key bias: it adds q . b_k to every score of a query, which the softmax cancels (its
    gradient is identically zero). Adam-mini blocks: ``weight_k`` one per key head (dk rows),
    ``weight_v`` one per row, ``bias_v`` per element."""

    def __init__(self, kv_dim: int, kv_heads: int, key_size: int, value_size: int,
                 seed: int = 0):
        rng = np.random.default_rng(seed)
        self.kv_dim = kv_dim
        self.weight_k = Parameter(uniform_init(rng, (kv_heads * key_size, kv_dim), kv_dim),
                                  "weight", key_size * kv_dim)
        self.weight_v = Parameter(uniform_init(rng, (kv_heads * value_size, kv_dim), kv_dim),
                                  "weight", kv_dim)
        self.bias_v = Parameter(uniform_init(rng, (kv_heads * value_size,), kv_dim), "bias", 1)

    def forward(self, context: Tensor) -> tuple[Tensor, Tensor]:
        b, t, _ = context.shape
        flat = ops.reshape(context, (b * t, self.kv_dim))
        k = ops.linear(flat, self.weight_k)
        v = ops.linear(flat, self.weight_v, self.bias_v)
        return (ops.reshape(k, (b, t, k.shape[1])), ops.reshape(v, (b, t, v.shape[1])))


@register
class MultiHeadAttention(Module):
    """Multi-head attention with ``kv_heads`` key/value heads shared by groups of
    ``heads // kv_heads`` query heads (GQA; ``kv_heads == heads`` is standard MHA)::

        Q = x W_q^T + b_q (B, Tq, H*dk);  K = c W_k^T, V = c W_v^T + b_v (B, Tk, Hkv*d)
        head h: O_h = softmax(Q_h K_{g(h)}^T / sqrt(dk)) V_{g(h)},  g(h) = h // (H / Hkv)
        y = [O_0 ... O_{H-1}] W_o^T + b_o                                 (B, Tq, out_dim)

    ``forward(x, context=None)``: x (B, Tq, q_dim) or (B, q_tokens*q_dim); the context
    (B, Tk, kv_dim) or (B, kv_tokens*kv_dim), or x itself (self-attention) when None. The
    output has x's shape with ``out_dim`` (default q_dim) features. With ``shared_kv`` the
    layer owns no K/V projection and :meth:`attend` takes given K and V (MLKV sharing).

    Adam-mini blocks: ``weight_q`` and ``weight_k`` one per head (``key_size`` rows),
    ``weight_v`` and ``weight_o`` one per row; biases per element.
    """

    def __init__(self, q_dim: int, heads: int = 8, key_size: int = 32, kv_heads: int | None = None,
                 kv_dim: int | None = None, value_size: int | None = None,
                 out_dim: int | None = None, q_tokens: int = 1, kv_tokens: int = 1,
                 shared_kv: bool = False, seed: int = 0):
        kv_heads = heads if kv_heads is None else kv_heads
        kv_dim = q_dim if kv_dim is None else kv_dim
        value_size = key_size if value_size is None else value_size
        out_dim = q_dim if out_dim is None else out_dim
        sizes = (q_dim, heads, key_size, kv_heads, kv_dim, value_size, out_dim, q_tokens,
                 kv_tokens)
        if min(sizes) < 1:
            raise ValueError(f"MultiHeadAttention: all sizes must be >= 1, got q_dim={q_dim}, "
                             f"heads={heads}, key_size={key_size}, kv_heads={kv_heads}, "
                             f"kv_dim={kv_dim}, value_size={value_size}, out_dim={out_dim}")
        if heads % kv_heads:
            raise ValueError(f"MultiHeadAttention: kv_heads={kv_heads} must divide "
                             f"heads={heads}")
        self.q_dim, self.heads, self.key_size, self.kv_heads = q_dim, heads, key_size, kv_heads
        self.kv_dim, self.value_size, self.out_dim = kv_dim, value_size, out_dim
        self.q_tokens, self.kv_tokens, self.shared_kv, self.seed = (q_tokens, kv_tokens,
                                                                    shared_kv, seed)
        rng = np.random.default_rng(seed)
        self.weight_q = Parameter(uniform_init(rng, (heads * key_size, q_dim), q_dim), "weight",
                                  key_size * q_dim)
        self.bias_q = Parameter(uniform_init(rng, (heads * key_size,), q_dim), "bias", 1)
        o_in = heads * value_size
        self.weight_o = Parameter(uniform_init(rng, (out_dim, o_in), o_in), "weight", o_in)
        self.bias_o = Parameter(uniform_init(rng, (out_dim,), o_in), "bias", 1)
        self.kv = None if shared_kv else KVProjection(kv_dim, kv_heads, key_size, value_size,
                                                      child_seed(seed, 1))

    def config(self) -> dict:
        return {"q_dim": self.q_dim, "heads": self.heads, "key_size": self.key_size,
                "kv_heads": self.kv_heads, "kv_dim": self.kv_dim, "value_size": self.value_size,
                "out_dim": self.out_dim, "q_tokens": self.q_tokens, "kv_tokens": self.kv_tokens,
                "shared_kv": self.shared_kv, "seed": self.seed}

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        if self.kv is None:
            raise ValueError("MultiHeadAttention(shared_kv=True) has no K/V projection; "
                             "call attend(x, k, v)")
        who = f"MultiHeadAttention({self.q_dim})"
        x3 = _tokens(x, self.q_tokens, self.q_dim, who, "x")
        if context is None:
            if self.kv_dim != self.q_dim or self.kv_tokens != self.q_tokens:
                raise ValueError(f"{who}: self-attention (no context) needs kv_dim == q_dim "
                                 f"and kv_tokens == q_tokens, got kv_dim={self.kv_dim}, "
                                 f"kv_tokens={self.kv_tokens}; pass a context")
            c3 = x3
        else:
            c3 = _tokens(context, self.kv_tokens, self.kv_dim, who, "context")
        k, v = self.kv(c3)
        y = self.attend(x3, k, v)
        return y if len(x.shape) == 3 else ops.reshape(y, (x.shape[0], -1))

    def attend(self, x: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """x (B, Tq, q_dim), projected k (B, Tk, Hkv*dk), v (B, Tk, Hkv*dv) -> (B, Tq, out_dim)."""
        b, tq, _ = x.shape
        q = ops.linear(ops.reshape(x, (b * tq, self.q_dim)), self.weight_q, self.bias_q)
        o = attention(ops.reshape(q, (b, tq, q.shape[1])), k, v, self.heads, self.kv_heads)
        y = ops.linear(ops.reshape(o, (b * tq, o.shape[2])), self.weight_o, self.bias_o)
        return ops.reshape(y, (b, tq, self.out_dim))


class CrossAttentionLayer(Module):
    """One layer of :class:`MLCrossAttentionMLKV` on rows h (B*Tq, d) with given K, V::

        a = LN1(h + Attn(h, K, V));  y = LN2(a + W2 act(W1 a + b1) + b2)
    """

    def __init__(self, q_dim: int, heads: int, kv_heads: int, key_size: int, ffn_dim: int,
                 ffn_activation: str, eps: float, seed: int, q_tokens: int = 1):
        self.q_dim, self.q_tokens = q_dim, q_tokens
        self.attn = MultiHeadAttention(q_dim, heads, key_size, kv_heads, shared_kv=True,
                                       seed=child_seed(seed, 0))
        self.norm1 = LayerNorm(q_dim, eps)
        self.ffn1 = Dense(q_dim, ffn_dim, ffn_activation, seed=child_seed(seed, 1))
        self.ffn2 = Dense(ffn_dim, q_dim, seed=child_seed(seed, 2))
        self.norm2 = LayerNorm(q_dim, eps)

    def forward(self, h: Tensor, k: Tensor, v: Tensor) -> Tensor:
        batch = h.shape[0] // self.q_tokens
        a = self.attn.attend(ops.reshape(h, (batch, h.shape[0] // batch, self.q_dim)), k, v)
        a = self.norm1(h, ops.reshape(a, h.shape))
        return self.norm2(a, self.ffn2(self.ffn1(a)))


@register
class MLCrossAttentionMLKV(Module):
    """The seed's multi-layer cross-attention with multi-layer key/value sharing (MLKV).

    x (B, q_tokens, q_dim) or (B, q_tokens*q_dim) attends to a context (B, kv_tokens, kv_dim)
    or (B, kv_tokens*kv_dim) through ``layers`` :class:`CrossAttentionLayer` s. Layer l uses
    K, V from projection number l // kv_step (a new projection every ``kv_step`` layers, so
    ceil(layers / kv_step) projections)::

        h_0 = x
        K_j, V_j = context W_k,j^T,  context W_v,j^T + b_v,j
        h_{l+1} = CrossAttentionLayer_l(h_l, K_{l // kv_step}, V_{l // kv_step})

    Output h_L with x's shape. Each layer: grouped-KV attention (``heads`` query heads,
    ``kv_heads`` KV heads, key/value size ``key_size``), output projection W_o, residual +
    LayerNorm, FFN q_dim -> ffn_mult*q_dim (``ffn_activation``) -> q_dim, residual +
    LayerNorm. ``context_transposed``: the flat context is stored (kv_dim, kv_tokens), e.g. a
    bar-major forecast (24 bars x 9 variables) read as 9 variable tokens of 24 values; it is
    transposed on the device first. Without a graph, a context of batch 1 is shared by every
    row of x: its keys and values are computed once (each row gets what a batch of one gets).

    Adam-mini blocks: as :class:`MultiHeadAttention` (Q, K per head; V, W_o per row), FFN
    weights per row (Dense), LayerNorm gamma / beta one per tensor, biases per element.
    """

    def __init__(self, q_dim: int = 32, kv_dim: int = 24, q_tokens: int = 1, kv_tokens: int = 9,
                 heads: int = 8, kv_heads: int = 4, key_size: int = 32, layers: int = 9,
                 kv_step: int = 1, ffn_mult: int = 4, ffn_activation: str = "leaky_relu",
                 context_transposed: bool = False, eps: float = 1e-5, seed: int = 0):
        sizes = (q_dim, kv_dim, q_tokens, kv_tokens, heads, kv_heads, key_size, layers, kv_step,
                 ffn_mult)
        if min(sizes) < 1:
            raise ValueError(f"MLCrossAttentionMLKV: all sizes must be >= 1, got q_dim={q_dim}, "
                             f"kv_dim={kv_dim}, q_tokens={q_tokens}, kv_tokens={kv_tokens}, "
                             f"heads={heads}, kv_heads={kv_heads}, key_size={key_size}, "
                             f"layers={layers}, kv_step={kv_step}, ffn_mult={ffn_mult}")
        if heads % kv_heads:
            raise ValueError(f"MLCrossAttentionMLKV: kv_heads={kv_heads} must divide "
                             f"heads={heads}")
        if ffn_activation not in ops.ACTIVATIONS:
            raise ValueError(f"MLCrossAttentionMLKV: unknown ffn_activation {ffn_activation!r};"
                             f" valid: {', '.join(ops.ACTIVATIONS)}")
        self.q_dim, self.kv_dim, self.q_tokens, self.kv_tokens = q_dim, kv_dim, q_tokens, kv_tokens
        self.heads, self.kv_heads, self.key_size = heads, kv_heads, key_size
        self.n_layers, self.kv_step, self.ffn_mult = layers, kv_step, ffn_mult
        self.ffn_activation, self.context_transposed = ffn_activation, context_transposed
        self.eps, self.seed = eps, seed
        n_kv = -(-layers // kv_step)
        self.kv = [KVProjection(kv_dim, kv_heads, key_size, key_size, child_seed(seed, 0, j))
                   for j in range(n_kv)]
        self.blocks = [CrossAttentionLayer(q_dim, heads, kv_heads, key_size, ffn_mult * q_dim,
                                           ffn_activation, eps, child_seed(seed, 1, i), q_tokens)
                       for i in range(layers)]

    def config(self) -> dict:
        return {"q_dim": self.q_dim, "kv_dim": self.kv_dim, "q_tokens": self.q_tokens,
                "kv_tokens": self.kv_tokens, "heads": self.heads, "kv_heads": self.kv_heads,
                "key_size": self.key_size, "layers": self.n_layers, "kv_step": self.kv_step,
                "ffn_mult": self.ffn_mult, "ffn_activation": self.ffn_activation,
                "context_transposed": self.context_transposed, "eps": self.eps,
                "seed": self.seed}

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        who = "MLCrossAttentionMLKV"
        x3 = _tokens(x, self.q_tokens, self.q_dim, who, "x")
        if self.context_transposed:
            c3 = batch_transpose(_tokens(context, self.kv_dim, self.kv_tokens, who,
                                         "context (transposed)"))
        else:
            c3 = _tokens(context, self.kv_tokens, self.kv_dim, who, "context")
        if c3.shape[0] not in (x3.shape[0], 1):
            raise ValueError(f"{who}: batch of x ({x3.shape[0]}) and context ({c3.shape[0]}) "
                             "differ")
        h = ops.reshape(x3, (x3.shape[0] * self.q_tokens, self.q_dim))
        for i, block in enumerate(self.blocks):
            if i % self.kv_step == 0:
                k, v = self.kv[i // self.kv_step](c3)
            h = block(h, k, v)
        return ops.reshape(h, x.shape)
