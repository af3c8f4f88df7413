"""The recurrent autoencoder of seed article 002 (spec 8.2): a recurrent encoder over the last
few bars and a dense decoder that must rebuild a longer history it no longer sees."""

from __future__ import annotations

from neurofx.nn import ops
from neurofx.nn.layers import LSTM, BatchNorm, VAEHead
from neurofx.nn.module import Dense, Module, child_seed, register
from neurofx.nn.tensor import Tensor


@register
class RecurrentAutoencoder(Module):
    """x (B, bars_in*n_vars) one bar per call (stateful), or (T, B, bars_in*n_vars) a
    sequence from a zero state -> reconstruction (B, bars_out*n_vars) or (T, B, ...).

    ``norm`` (running BatchNorm, the seed's batch 1000, eps ``norm_eps`` = 1e-10: the price
    features' variances are ~1e-7) -> ``lstm`` layers (sizes ``lstm``)
    -> ``to_latent`` (dense, linear: [mu | logvar] of ``latent`` values) -> ``vae``
    (:class:`VAEHead`) -> ``decoder`` dense layers (``decoder`` sizes, tanh) -> ``out``
    dense bars_out*n_vars (``out_activation``). Only the encoder is recurrent.

    :attr:`last_normalised` is the normaliser's output of the last forward (same leading
    shape as x): the study stacks its newest bar (columns 0..n_vars-1) into the FIFO target.

    .. note:: The seed feeds the last LSTM's 50 outputs straight into the VAE as
       [mu | logvar]. An LSTM output lies in (-1, 1), so logvar >= -1 and the sampling noise
       never falls below exp(-0.5) = 0.61 standard deviations: the latent cannot carry
       precise values. The linear ``to_latent`` layer lifts that bound.
       The seed's output layer is tanh; its targets are normalised features, which
       leave [-1, 1] often, so the default output here is linear (``out_activation="tanh"``
       restores the seed's choice). The seed's LSTM is one-step truncated (spec 8.1); here
       sequence mode backpropagates through the whole sub-sequence.
    """

    sequence_input = True  # Model.supports_sequences: (T, B, N) with full BPTT

    def __init__(self, n_vars: int = 9, bars_in: int = 10, bars_out: int = 40,
                 lstm: list[int] | tuple = (500, 250, 50), latent: int = 25,
                 decoder: list[int] | tuple = (40, 80, 160), out_activation: str = "none",
                 norm_window: int = 1000, norm_eps: float = 1e-10,
                 kld_mult: float = 1e-3, seed: int = 0):
        lstm, decoder = [int(k) for k in lstm], [int(k) for k in decoder]
        if min(n_vars, bars_in, bars_out, latent, *lstm, *decoder) < 1:
            raise ValueError(f"RecurrentAutoencoder: sizes must be >= 1; got n_vars={n_vars}, "
                             f"bars_in={bars_in}, bars_out={bars_out}, lstm={lstm}, "
                             f"latent={latent}, decoder={decoder}")
        self.n_vars, self.bars_in, self.bars_out = n_vars, bars_in, bars_out
        self.lstm_sizes, self.latent, self.decoder_sizes = lstm, latent, decoder
        self.out_activation, self.norm_window, self.norm_eps = (out_activation, norm_window,
                                                                norm_eps)
        self.kld_mult, self.seed = kld_mult, seed
        n_in = n_vars * bars_in
        self.norm = BatchNorm(n_in, mode="running", eps=norm_eps, window=norm_window)
        sizes = [n_in, *lstm]
        self.lstm = [LSTM(sizes[i], sizes[i + 1], seed=child_seed(seed, 7, 31, i))
                     for i in range(len(lstm))]
        self.to_latent = Dense(lstm[-1], 2 * latent, seed=child_seed(seed, 7, 35))
        self.vae = VAEHead(latent, kld_mult, seed=child_seed(seed, 7, 32))
        dims = [latent, *decoder]
        self.decoder = [Dense(dims[i], dims[i + 1], "tanh", seed=child_seed(seed, 7, 33, i))
                        for i in range(len(decoder))]
        self.out = Dense(dims[-1], n_vars * bars_out, out_activation, seed=child_seed(seed, 7, 34))
        self.last_normalised: Tensor | None = None

    def config(self) -> dict:
        return {"n_vars": self.n_vars, "bars_in": self.bars_in, "bars_out": self.bars_out,
                "lstm": list(self.lstm_sizes), "latent": self.latent,
                "decoder": list(self.decoder_sizes),
                "out_activation": self.out_activation, "norm_window": self.norm_window,
                "norm_eps": self.norm_eps,
                "kld_mult": self.kld_mult, "seed": self.seed}

    def forward(self, x: Tensor) -> Tensor:
        n_in = self.n_vars * self.bars_in
        if x.shape[-1] != n_in or len(x.shape) not in (2, 3):
            raise ValueError(f"RecurrentAutoencoder: input must be (B, {n_in}) or "
                             f"(T, B, {n_in}), got {x.shape}")
        y = self.norm(x)
        self.last_normalised = y
        for layer in self.lstm:
            y = layer(y)
        y = self.to_latent(y)
        lead = y.shape[:-1]
        z = self.vae(ops.reshape(y, (y.numel // y.shape[-1], y.shape[-1])))
        z = ops.reshape(z, (*lead, z.shape[-1]))
        for layer in self.decoder:
            z = layer(z)
        return self.out(z)


__all__ = ["RecurrentAutoencoder"]
