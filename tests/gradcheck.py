"""Reusable checks of engine layers against float64 numpy references.

``check_module`` runs a model's forward on float32-exact inputs, compares it with an
independent numpy float64 forward, then backpropagates ``L = sum(out * R)`` for a fixed random
R and compares every parameter and input gradient with float64 central finite differences of
the numpy forward (so the reference never touches the engine).

Import from a test with ``sys.path`` pointing at ``tests/`` (see the layer tests).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from neurofx.nn import Tensor


def fd_grads(f: Callable[..., np.ndarray], arrays: Sequence[np.ndarray], r: np.ndarray,
             eps: float = 1e-6) -> list[np.ndarray]:
    """d sum(f(*arrays) * r) / d array for each array, by float64 central differences."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    grads = []
    for a in arrays:
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            keep = a[idx]
            a[idx] = keep + eps
            plus = np.sum(f(*arrays) * r)
            a[idx] = keep - eps
            minus = np.sum(f(*arrays) * r)
            a[idx] = keep
            g[idx] = (plus - minus) / (2 * eps)
        grads.append(g)
    return grads


def assert_close(got, expected, rtol: float = 1e-4, floor: float = 1.0, what: str = "") -> None:
    """|got - expected| <= rtol * (|expected| + max(max|expected|, floor)): float32 vs float64
    agreement relative to the array's scale (small entries of a large array are compared at
    the array's scale, not their own)."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    scale = max(float(np.abs(expected).max(initial=0.0)), floor)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def exact32(a) -> np.ndarray:
    """``a`` rounded to float32 and back: the engine sees exactly the reference's values."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def check_module(model, inputs: Sequence[np.ndarray], np_forward: Callable[..., np.ndarray], *,
                 seed: int = 0, rtol: float = 1e-4, grad_rtol: float = 1e-4,
                 grad_inputs: bool = True,
                 np_forward_grad: Callable[..., np.ndarray] | None = None,
                 call: Callable[..., Tensor] | None = None) -> dict[str, np.ndarray]:
    """Check forward and backward of ``model`` (a :class:`~neurofx.nn.Model`).

    ``np_forward(params, *inputs)`` gets float64 copies of the model's parameters by name and
    of the inputs. ``np_forward_grad`` (default ``np_forward``) is the function differentiated
    numerically (e.g. with running statistics frozen). ``call(*tensors)`` replaces
    ``model.forward`` (e.g. to return an extra loss tensor). It is called before the numpy
    functions, so they may read what the engine call produced (e.g. the noise it drew).
    Returns the engine gradients by name (inputs as ``input0``, ...).
    """
    rng = np.random.default_rng(seed)
    params = {k: v.astype(np.float64) for k, v in model.named_parameters().items()}
    xs = [exact32(a) for a in inputs]
    tensors = [Tensor.from_numpy(a, requires_grad=grad_inputs, device=model.device) for a in xs]
    model.zero_grad()
    out = (call or model.forward)(*tensors)
    expected = np_forward(params, *xs)
    assert_close(out.numpy(), expected, rtol, what="forward")

    r = exact32(rng.normal(size=expected.shape))
    out.backward(r.astype(np.float32))
    got = model.named_gradients()
    if grad_inputs:
        got.update({f"input{i}": t.grad() for i, t in enumerate(tensors)})
    names = list(params)
    fg = np_forward_grad or np_forward

    def f(*arrays):
        inputs = arrays[len(names):] if grad_inputs else xs  # data inputs stay constant
        return fg(dict(zip(names, arrays[: len(names)], strict=True)), *inputs)

    wrt = [*params.values(), *(xs if grad_inputs else [])]
    labels = [*names, *(f"input{i}" for i in range(len(xs)))] if grad_inputs else names
    for label, num in zip(labels, fd_grads(f, wrt, r), strict=True):
        assert_close(got[label], num, grad_rtol, floor=1e-3, what=f"d/d {label}")
    return got
