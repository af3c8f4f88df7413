"""Transformer ops: grouped-KV scaled dot-product attention, layer norm (with residual),
batched transpose. Kernels in ``kernels/attention.cl``."""

from __future__ import annotations

import math

from ..launch import f32, i32, launch
from ..tensor import Tensor, make_output

FILE = "attention.cl"


def attention(q: Tensor, k: Tensor, v: Tensor, heads: int, kv_heads: int) -> Tensor:
    """Multi-head attention core with grouped key/value heads (GQA / MLKV).

    ``q`` (B, Tq, H*dk), ``k`` (B, Tk, Hkv*dk), ``v`` (B, Tk, Hkv*dv) -> (B, Tq, H*dv)::

        g(h) = h // (H / Hkv)
        P[b, h, i, :] = softmax_j( q[b, i, h, :] . k[b, j, g(h), :] / sqrt(dk) )
        out[b, i, h, :] = sum_j P[b, h, i, j] v[b, j, g(h), :]

    Hkv = H is standard multi-head attention. No mask (cross-attention over a context).
    Without a graph, ``k`` and ``v`` may hold one batch row that every row of ``q`` attends
    to (one context shared by a batch: each row gets exactly what a batch of one gives).
    """
    for t, name in ((q, "q"), (k, "k"), (v, "v")):
        if len(t.shape) != 3:
            raise ValueError(f"attention: {name} must be (batch, tokens, features), got {t.shape}")
    if heads < 1 or kv_heads < 1 or heads % kv_heads:
        raise ValueError(f"attention: kv_heads={kv_heads} must divide heads={heads}")
    batch, tq, qf = q.shape
    if k.shape[:2] != v.shape[:2] or k.shape[0] not in (batch, 1):
        raise ValueError(f"attention: batch/tokens of q {q.shape}, k {k.shape}, v {v.shape} "
                         "disagree")
    shared = int(k.shape[0] != batch)
    tk = k.shape[1]
    if qf % heads or k.shape[2] % kv_heads or v.shape[2] % kv_heads:
        raise ValueError(f"attention: features of q {qf}, k {k.shape[2]}, v {v.shape[2]} are "
                         f"not multiples of heads={heads} / kv_heads={kv_heads}")
    dk, dv = qf // heads, v.shape[2] // kv_heads
    if k.shape[2] // kv_heads != dk:
        raise ValueError(f"attention: query head size {dk} != key head size "
                         f"{k.shape[2] // kv_heads}")
    out = make_output((batch, tq, heads * dv), (q, k, v), "attention")
    if shared and out.requires_grad:
        raise ValueError(f"attention: k and v of batch 1 for q of batch {batch} are shared by "
                         "the rows, which only inference (no_grad) supports")
    dev = out.device
    scale = 1.0 / math.sqrt(dk)
    p = dev.alloc(4 * batch * heads * tq * tk, "activations", dev.owner)
    launch(dev, FILE, "attn_fwd", (tq, heads, batch), q.buf, k.buf, v.buf, p, out.buf, i32(tq),
           i32(tk), i32(kv_heads), i32(dk), i32(dv), f32(scale), i32(shared))
    if out.requires_grad:
        def _backward():
            ds = dev.alloc(4 * batch * heads * tq * tk, "activations", dev.owner)
            dq = q.ensure_grad() if q.requires_grad else ds
            launch(dev, FILE, "attn_bwd_q", (tq, heads, batch), k.buf, v.buf, p, out.grad_buf,
                   ds, dq, i32(tq), i32(tk), i32(kv_heads), i32(dk), i32(dv), f32(scale),
                   i32(q.requires_grad))
            if k.requires_grad or v.requires_grad:
                dkb = k.ensure_grad() if k.requires_grad else ds
                dvb = v.ensure_grad() if v.requires_grad else ds
                launch(dev, FILE, "attn_bwd_kv", (max(dk, dv), tk, batch * kv_heads), q.buf, p,
                       out.grad_buf, ds, dkb, dvb, i32(tq), i32(tk), i32(heads),
                       i32(kv_heads), i32(dk), i32(dv), f32(scale), i32(k.requires_grad),
                       i32(v.requires_grad))
        out._backward = _backward
    return out


def layer_norm(x: Tensor, gamma: Tensor, beta: Tensor, residual: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Per-row normalisation over the last dimension n, of ``x + residual`` when given::

        z = x + residual;  y = gamma * (z - mean(z)) / sqrt(var(z) + eps) + beta

    (biased variance over the n features; ``gamma``, ``beta`` (n,)), like torch LayerNorm.
    """
    n = x.shape[-1]
    if gamma.numel != n or beta.numel != n:
        raise ValueError(f"layer_norm: gamma/beta sizes {gamma.numel}/{beta.numel} != {n}")
    if residual is not None and residual.shape != x.shape:
        raise ValueError(f"layer_norm: residual {residual.shape} != input {x.shape}")
    rows = x.numel // n
    parents = (x, gamma, beta) if residual is None else (x, gamma, beta, residual)
    out = make_output(x.shape, parents, "layer_norm")
    dev = out.device
    xhat = dev.alloc(4 * x.numel, "activations", dev.owner)
    inv = dev.alloc(4 * rows, "activations", dev.owner)
    rbuf = residual.buf if residual is not None else x.buf
    launch(dev, FILE, "ln_fwd", rows, x.buf, rbuf, i32(residual is not None), gamma.buf,
           beta.buf, out.buf, xhat, inv, i32(n), f32(eps))
    if out.requires_grad:
        def _backward():
            need_r = residual is not None and residual.requires_grad
            if x.requires_grad or need_r:
                dx = x.ensure_grad() if x.requires_grad else xhat
                dr = residual.ensure_grad() if need_r else xhat
                launch(dev, FILE, "ln_bwd_x", rows, out.grad_buf, xhat, inv, gamma.buf, dx, dr,
                       i32(x.requires_grad), i32(need_r), i32(n))
            if gamma.requires_grad or beta.requires_grad:
                spare = None if gamma.requires_grad and beta.requires_grad else dev.alloc(
                    4 * n, "activations", dev.owner)
                dg = gamma.ensure_grad() if gamma.requires_grad else spare
                db = beta.ensure_grad() if beta.requires_grad else spare
                launch(dev, FILE, "ln_bwd_params", n, out.grad_buf, xhat, dg, db, i32(rows))
        out._backward = _backward
    return out


def batch_transpose(x: Tensor) -> Tensor:
    """(B, A, C) -> (B, C, A), a copy."""
    if len(x.shape) != 3:
        raise ValueError(f"batch_transpose: input must be 3-D, got {x.shape}")
    b, a, c = x.shape
    out = make_output((b, c, a), (x,), "batch_transpose")
    launch(out.device, FILE, "batch_transpose", (c, a, b), x.buf, out.buf, i32(a), i32(0))
    if out.requires_grad:
        out._backward = lambda: launch(out.device, FILE, "batch_transpose", (a, c, b),
                                       out.grad_buf, x.ensure_grad(), i32(c), i32(1))
    return out


__all__ = ["attention", "batch_transpose", "layer_norm"]
