"""VAE head ops: reparameterised sampling and the KL divergence to N(0, 1).

Input rows are [mu (k) | logvar (k)]. The sampling noise comes from the device's
counter-based RNG: the same (seed, counter) gives the same eps.
"""

from __future__ import annotations

from ..launch import f32, i32, launch, replay_args, u32
from ..tensor import Tensor, make_output

FILE = "vae.cl"
WG = 256  # must match vae.cl


def _split_dims(x: Tensor, op: str) -> tuple[int, int]:
    if len(x.shape) != 2 or x.shape[1] % 2:
        raise ValueError(f"{op}: input must be (batch, 2k) = [mu | logvar], got {x.shape}")
    return x.shape[0], x.shape[1] // 2


def vae_sample(x: Tensor, seed: int, counter: int, next_args=None) -> tuple[Tensor, Tensor]:
    """y = mu + exp(0.5 * logvar) * eps, eps ~ N(0, 1) (Box-Muller); returns (y, eps).

    ``next_args() -> (seed, counter)``, when given, is what a captured plan calls at each
    replay to draw fresh noise (see :func:`neurofx.nn.launch.replay_args`)."""
    batch, k = _split_dims(x, "vae_sample")
    out = make_output((batch, k), (x,), "vae_sample")
    dev = out.device
    eps = Tensor((batch, k), device=dev, name=dev.owner)
    launch(dev, FILE, "vae_sample_fwd", (k, batch), x.buf, out.buf, eps.buf,
           u32(seed & 0xFFFFFFFF), u32(counter & 0xFFFFFFFF),
           dynamic=None if next_args is None else replay_args(next_args, 3))
    if out.requires_grad:
        out._backward = lambda: launch(dev, FILE, "vae_sample_bwd", (k, batch), x.buf, eps.buf,
                                       out.grad_buf, x.ensure_grad())
    return out, eps


def vae_sample_rows(x: Tensor, seeds_buf, counter: int, next_counter=None
                    ) -> tuple[Tensor, Tensor]:
    """:func:`vae_sample` with one seed per row: ``seeds_buf`` holds B uint32 seeds and row b
    draws exactly what a batch of one row with seed ``seeds[b]`` draws (the same counter), so
    a group of passes sampled together gets each pass's own noise. ``next_counter() ->
    counter`` is what a captured plan calls at each replay."""
    batch, k = _split_dims(x, "vae_sample_rows")
    if seeds_buf.size < 4 * batch:
        raise ValueError(f"vae_sample_rows: {seeds_buf.size // 4} seeds for {batch} rows")
    out = make_output((batch, k), (x,), "vae_sample_rows")
    dev = out.device
    eps = Tensor((batch, k), device=dev, name=dev.owner)
    launch(dev, FILE, "vae_sample_rows_fwd", (k, batch), x.buf, out.buf, eps.buf, seeds_buf,
           u32(counter & 0xFFFFFFFF),
           dynamic=None if next_counter is None else
           {4: lambda: u32(next_counter() & 0xFFFFFFFF)})
    if out.requires_grad:
        out._backward = lambda: launch(dev, FILE, "vae_sample_bwd", (k, batch), x.buf, eps.buf,
                                       out.grad_buf, x.ensure_grad())
    return out, eps


def vae_kl(x: Tensor, mult: float = 1.0) -> Tensor:
    """mult * mean over rows of -0.5 * sum(1 + logvar - mu^2 - exp(logvar)), shape (1,)."""
    batch, k = _split_dims(x, "vae_kl")
    out = make_output((1,), (x,), "vae_kl")
    dev = out.device
    launch(dev, FILE, "vae_kl_fwd", WG, x.buf, out.buf, i32(batch), i32(k), f32(mult),
           local_size=(WG,))
    if out.requires_grad:
        out._backward = lambda: launch(dev, FILE, "vae_kl_bwd", (k, batch), x.buf, out.grad_buf,
                                       x.ensure_grad(), f32(mult))
    return out
