"""Matrix ops on the engine's GEMM kernels: matmul (with transposes), linear, transpose."""

from __future__ import annotations

from ..gemm import get_gemm
from ..launch import i32, launch
from ..tensor import Tensor, grad_enabled, make_output
from .elementwise import ACTIVATIONS, bias_add
from .elementwise import activation as activation_op

# From this many rows on, a training forward with tanh applies bias and tanh in a launch of
# its own (Gemm.dense's ``split``): below, the launch costs more than the 8-wide tanh saves.
SPLIT_TANH_ROWS = 32


def _activation_code(kind: str) -> int:
    try:
        return ACTIVATIONS[kind]
    except KeyError:
        raise ValueError(
            f"unknown activation {kind!r}; valid: {', '.join(ACTIVATIONS)}") from None


def _dims(t: Tensor, trans: bool) -> tuple[int, int]:
    if len(t.shape) != 2:
        raise ValueError(f"matmul expects 2-D tensors, got shape {t.shape}")
    r, c = t.shape
    return (c, r) if trans else (r, c)


def matmul(a: Tensor, b: Tensor, trans_a: bool = False, trans_b: bool = False) -> Tensor:
    """op(a) @ op(b), where op transposes when the flag is set; all row-major."""
    m, k = _dims(a, trans_a)
    k2, n = _dims(b, trans_b)
    if k != k2:
        raise ValueError(f"matmul: inner sizes differ ({m}x{k} @ {k2}x{n})")
    out = make_output((m, n), (a, b), "matmul")

    gemm = get_gemm(out.device)
    gemm.gemm(a.buf, b.buf, out.buf, m, n, k, trans_a=trans_a, trans_b=trans_b)
    if out.requires_grad:
        def _backward():
            dc = out.grad_buf
            if a.requires_grad:
                if not trans_a:  # dA (m,k) += dC (m,n) @ op(B)^T
                    gemm.gemm(dc, b.buf, a.ensure_grad(), m, k, n,
                              trans_b=not trans_b, accumulate=True)
                else:            # dA (k,m) += op(B) (k,n) @ dC^T
                    gemm.gemm(b.buf, dc, a.ensure_grad(), k, m, n,
                              trans_a=trans_b, trans_b=True, accumulate=True)
            if b.requires_grad:
                if not trans_b:  # dB (k,n) += op(A)^T @ dC
                    gemm.gemm(a.buf, dc, b.ensure_grad(), k, n, m,
                              trans_a=not trans_a, accumulate=True)
                else:            # dB (n,k) += dC^T @ op(A)
                    gemm.gemm(dc, a.buf, b.ensure_grad(), n, k, m,
                              trans_a=True, trans_b=trans_a, accumulate=True)
        out._backward = _backward
    return out


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None,
           activation: str = "none") -> Tensor:
    """act(x (rows, in) @ weight (out, in)^T + bias (out,)), like torch.nn.functional.linear
    followed by the activation.

    The forward is :meth:`~neurofx.nn.gemm.Gemm.dense`: ONE launch on the direct GEMM path (its
    epilogue adds the bias and applies the activation), the product and one element-wise
    launch on the packed path. With a graph, the backward is one launch for the activation's
    and the bias's gradients (``bias_act_bwd``: dz = dy act'(y), dbias += column sums of dz),
    then the two products dW += dz^T x and dx += dz W. The values are those of matmul,
    bias_add and activation, each with its backward (the same kernels' arithmetic), in fewer
    launches and without the pre-activation buffers; softplus, whose derivative needs the
    pre-activation, takes that composition."""
    code = _activation_code(activation)
    parents = (x, weight) if bias is None else (x, weight, bias)
    graph = grad_enabled() and any(p.requires_grad for p in parents)
    if (bias is not None or code) and not (graph and code == ACTIVATIONS["softplus"]):
        return _dense(x, weight, bias, code, parents, graph)
    y = matmul(x, weight, trans_b=True)
    y = bias_add(y, bias) if bias is not None else y
    return activation_op(y, activation)


def _dense(x: Tensor, weight: Tensor, bias: Tensor | None, code: int,
           parents: tuple[Tensor, ...], graph: bool) -> Tensor:
    """act(x @ weight^T + bias) through Gemm.dense, with the fused backward of :func:`linear`
    when ``graph`` (act'(y) from y alone: not softplus)."""
    m, k = _dims(x, False)
    n, k2 = _dims(weight, False)
    if k != k2:
        raise ValueError(f"linear: input has {k} features, weight expects {k2}")
    out = make_output((m, n), parents, "linear")
    gemm = get_gemm(out.device)
    # training, tanh over 32 rows or more: the 8-wide tanh of a separate epilogue launch
    # (the same values; about 0.1 ms less per 1080-256 layer at batch 32 on the 2-core CPU)
    split = graph and code == ACTIVATIONS["tanh"] and m >= SPLIT_TANH_ROWS
    gemm.dense(x.buf, weight.buf, out.buf, m, n, k, None if bias is None else bias.buf, code,
               split=split)
    if graph and out.requires_grad:
        def _backward():
            dev, dy = out.device, out.grad_buf
            db = bias is not None and bias.requires_grad
            if code == 0:  # dz = dy
                dz = dy
                if db:
                    launch(dev, "elementwise.cl", "bias_add_bwd", -(-n // 8), dy,
                           bias.ensure_grad(), i32(m), i32(n))
            else:
                dz = dev.alloc(out.nbytes, "activations", out.name)
                launch(dev, "elementwise.cl", "bias_act_bwd", -(-n // 8), out.buf, dy, dz,
                       bias.ensure_grad() if db else dz, i32(m), i32(n), i32(db), i32(code))
            if x.requires_grad:  # dx (m, k) += dz (m, n) @ W (n, k)
                # x's first gradient (an activation's, no other consumer's backward has run
                # yet): written, not added to a zero-filled buffer (the same values)
                fresh = x.grad_buf is None and type(x) is Tensor
                if fresh:
                    x.grad_buf = dev.alloc(x.nbytes, "activations", x.name)
                gemm.gemm(dz, weight.buf, x.ensure_grad(), m, k, n, accumulate=not fresh)
            if weight.requires_grad:  # dW (n, k) += dz^T @ x
                gemm.gemm(dz, x.buf, weight.ensure_grad(), n, k, m, trans_a=True,
                          accumulate=True)
        out._backward = _backward
    return out


def transpose(x: Tensor) -> Tensor:
    """2-D transpose (a copy)."""
    if len(x.shape) != 2:
        raise ValueError(f"transpose expects a 2-D tensor, got {x.shape}")
    rows, cols = x.shape
    out = make_output((cols, rows), (x,), "transpose")
    launch(out.device, "shape.cl", "transpose2d", (cols, rows), x.buf, out.buf, i32(rows),
           i32(cols), i32(0))
    if out.requires_grad:
        out._backward = lambda: launch(out.device, "shape.cl", "transpose2d", (rows, cols),
                                       out.grad_buf, x.ensure_grad(), i32(cols), i32(rows), i32(1))
    return out
