"""The seed's TPM agent (spec 1.3-1.6): encoder, actor and critic, registered in
:mod:`neurofx.agents.registry` as ``"tpm"`` (importing this module registers them).

* encoder: running BatchNorm -> TPM -> dense LReLU -> dense sigmoid -> dense tanh (24 x 9)
  [-> RevIN de-normalisation with the BatchNorm's statistics, ``revin=True``].
* actor: account (12) -> dense 32 sigmoid -> MLCrossAttentionMLKV over the forecast ->
  dense 256 sigmoid x2 -> dense 12 -> VAE head (6 actions).
* critic: action (6) -> dense 32 sigmoid -> MLCrossAttentionMLKV -> dense 256 sigmoid x3 ->
  dense 3 rewards.

Training objective: :data:`LOSSES` maps ``"<role>:tpm"`` to the FreDF loss of that model's
output (spec 1.4, 9.4); callers use it as ``Model(..., loss_fn=LOSSES[key])``.
"""

from __future__ import annotations

from functools import partial

from neurofx.errors import NeurofxError
from neurofx.nn import ops
from neurofx.nn.layers import BatchNorm, MLCrossAttentionMLKV, RevIN, VAEHead
from neurofx.nn.layers.tpm import TPM
from neurofx.nn.losses import fredf_loss
from neurofx.nn.module import Dense, Module, child_seed
from neurofx.nn.module import register as register_layer
from neurofx.nn.tensor import Tensor
from neurofx.schema import (
    ACTOR_ACCOUNT_SIZE,
    BAR_FEATURES,
    FORECAST_BARS,
    HISTORY_BARS,
    N_ACTIONS,
    N_REWARDS,
)

from .registry import check_sizes, register

# The normaliser's eps: price differences, ATR and MACD of EURUSD H1 have variances of 7e-8 to
# 1.3e-6, so the engine's default 1e-5 would squash them; the seed divides by sqrt(var) alone.
NORM_EPS = 1e-10

@register_layer
class TPMEncoder(Module):
    """State window (B, bars*n_vars) or sequence (T, B, bars*n_vars) -> forecast (B, horizon*V)
    or (T, B, horizon*V), bar-major like the input.

    ``norm`` (running BatchNorm) -> ``tpm`` (:class:`TPM`, stateful per call) -> ``head``
    (dense ``hidden`` LReLU, dense ``hidden`` sigmoid, dense horizon*V tanh) and, with
    ``revin``, ``revin`` (:class:`RevIN` bound to ``norm`` at construction, so a rebuilt or
    loaded model is bound as well). ``norm_eps`` defaults to 1e-10 (see :data:`NORM_EPS`).
    Without RevIN the output is the tanh layer: the forecast
    in standardised units (what the study's scaled targets and the actor's context use).

    .. note:: In sequence mode the RevIN uses the normaliser's statistics after the whole
       sequence (one kernel over all rows); step mode uses each step's statistics, as the
       seed. The two modes agree exactly without RevIN.
    """

    sequence_input = True  # Model.supports_sequences: forward takes (T, B, N) with full BPTT

    def __init__(self, bars: int = HISTORY_BARS, n_vars: int = BAR_FEATURES, hidden: int = 256,
                 horizon: int = FORECAST_BARS, levels: list[int] | tuple = (6, 5, 4, 1),
                 min_step: float = 0.2, norm_window: int = 10000, norm_eps: float = NORM_EPS,
                 revin: bool = False, seed: int = 0):
        n = bars * n_vars
        self.bars, self.n_vars, self.hidden, self.horizon = bars, n_vars, hidden, horizon
        self.levels = [int(k) for k in levels]
        self.min_step, self.norm_window, self.norm_eps = min_step, norm_window, norm_eps
        self.use_revin, self.seed = revin, seed
        self.norm = BatchNorm(n, mode="running", eps=norm_eps, window=norm_window)
        self.tpm = TPM(bars, n_vars, hidden, self.levels, min_step, child_seed(seed, 7, 11))
        out = horizon * n_vars
        self.head = [Dense(hidden, hidden, "leaky_relu", seed=child_seed(seed, 7, 12)),
                     Dense(hidden, hidden, "sigmoid", seed=child_seed(seed, 7, 13)),
                     Dense(hidden, out, "tanh", seed=child_seed(seed, 7, 14))]
        self.revin = RevIN(out, n).bind(self.norm) if revin else None

    def config(self) -> dict:
        return {"bars": self.bars, "n_vars": self.n_vars, "hidden": self.hidden,
                "horizon": self.horizon, "levels": list(self.levels),
                "min_step": self.min_step, "norm_window": self.norm_window,
                "norm_eps": self.norm_eps, "revin": self.use_revin, "seed": self.seed}

    def forward(self, x: Tensor) -> Tensor:
        n = self.bars * self.n_vars
        if x.shape[-1] != n or len(x.shape) not in (2, 3):
            raise ValueError(f"TPMEncoder: input must be (B, {n}) or (T, B, {n}), got "
                             f"{x.shape}")
        y = self.tpm(self.norm(x))
        for layer in self.head:
            y = layer(y)
        if self.revin is not None:
            shape = y.shape
            y = ops.reshape(self.revin(ops.reshape(y, (y.numel // shape[-1], shape[-1]))),
                            shape)
        return y

@register_layer
class CrossAttentionAgent(Module):
    """forward(x, context): x (B, n_in), context (B, kv_tokens*kv_dim) -> (B, n_out); without
    a graph the context may be one row shared by the batch (``shares_context``: a group of
    passes decides on one forecast).

    ``embed`` = dense n_in -> q_dim sigmoid; ``cross`` = :class:`MLCrossAttentionMLKV`
    (x attends to the context tokens); ``body`` = ``depth`` dense ``hidden`` sigmoid layers;
    ``out`` = dense to n_out (2 * n_out with ``vae``: [mu | logvar]) and ``vae`` =
    :class:`VAEHead` sampling n_out values.
    """

    shares_context = True

    def __init__(self, n_in: int, n_out: int, q_dim: int = 32, kv_dim: int = FORECAST_BARS,
                 kv_tokens: int = BAR_FEATURES, heads: int = 8, kv_heads: int = 4,
                 key_size: int = 32, layers: int = 9, kv_step: int = 1, hidden: int = 256,
                 depth: int = 2, vae: bool = False, kld_mult: float = 1e-3,
                 context_transposed: bool = True, seed: int = 0):
        self.n_in, self.n_out, self.q_dim, self.kv_dim, self.kv_tokens = (n_in, n_out, q_dim,
                                                                          kv_dim, kv_tokens)
        self.heads, self.kv_heads, self.key_size, self.n_layers = heads, kv_heads, key_size, layers
        self.kv_step, self.hidden, self.depth, self.use_vae = kv_step, hidden, depth, vae
        self.kld_mult, self.context_transposed, self.seed = kld_mult, context_transposed, seed
        self.embed = Dense(n_in, q_dim, "sigmoid", seed=child_seed(seed, 7, 21))
        self.cross = MLCrossAttentionMLKV(q_dim, kv_dim, 1, kv_tokens, heads, kv_heads, key_size,
                                          layers, kv_step, context_transposed=context_transposed,
                                          seed=child_seed(seed, 7, 22))
        sizes = [q_dim] + [hidden] * depth
        self.body = [Dense(sizes[i], sizes[i + 1], "sigmoid", seed=child_seed(seed, 7, 23, i))
                     for i in range(depth)]
        self.out = Dense(sizes[-1], 2 * n_out if vae else n_out, seed=child_seed(seed, 7, 24))
        self.vae = VAEHead(n_out, kld_mult, seed=child_seed(seed, 7, 25)) if vae else None

    def config(self) -> dict:
        return {"n_in": self.n_in, "n_out": self.n_out, "q_dim": self.q_dim,
                "kv_dim": self.kv_dim, "kv_tokens": self.kv_tokens, "heads": self.heads,
                "kv_heads": self.kv_heads, "key_size": self.key_size, "layers": self.n_layers,
                "kv_step": self.kv_step, "hidden": self.hidden, "depth": self.depth,
                "vae": self.use_vae, "kld_mult": self.kld_mult,
                "context_transposed": self.context_transposed, "seed": self.seed}

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        if len(x.shape) != 2 or x.shape[1] != self.n_in:
            raise ValueError(f"CrossAttentionAgent: input must be (B, {self.n_in}), got "
                             f"{x.shape}")
        y = self.cross(self.embed(x), context)
        for layer in self.body:
            y = layer(y)
        y = self.out(y)
        return self.vae(y) if self.vae is not None else y

def _check(role: str, **sizes) -> None:
    check_sizes(role, "tpm", **sizes)
    if "heads" in sizes and sizes["heads"] % sizes["kv_heads"]:
        raise NeurofxError(f"{role} model 'tpm': kv_heads={sizes['kv_heads']} must divide "
                           f"heads={sizes['heads']}")

@register("encoder", "tpm")
def tpm_encoder(bars: int = HISTORY_BARS, n_vars: int = BAR_FEATURES, hidden: int = 256,
                horizon: int = FORECAST_BARS, levels: tuple | list = (6, 5, 4, 1),
                min_step: float = 0.2, norm_window: int = 10000, norm_eps: float = NORM_EPS,
                revin: bool = False, seed: int = 1) -> dict:
    """The seed's encoder "Enc" (spec 1.3): 1080 -> 216 forecast (standardised units; the
    seed's raw-unit RevIN output with ``revin=True``)."""
    _check("encoder", bars=bars, n_vars=n_vars, hidden=hidden, horizon=horizon,
           norm_window=norm_window)
    if bars < 3:
        raise NeurofxError(f"encoder model 'tpm': override bars={bars} must be >= 3 (PLR)")
    return {"type": "TPMEncoder", "bars": bars, "n_vars": n_vars, "hidden": hidden,
            "horizon": horizon, "levels": list(levels), "min_step": min_step,
            "norm_window": norm_window, "norm_eps": norm_eps, "revin": revin, "seed": seed}

def _agent(role, n_in, n_out, vae, depth, seed, q_dim, kv_dim, kv_tokens, heads, kv_heads,
           key_size, layers, kv_step, hidden, kld_mult, context_transposed) -> dict:
    _check(role, q_dim=q_dim, kv_dim=kv_dim, kv_tokens=kv_tokens, heads=heads,
           kv_heads=kv_heads, key_size=key_size, layers=layers, kv_step=kv_step, hidden=hidden,
           depth=depth)
    return {"type": "CrossAttentionAgent", "n_in": n_in, "n_out": n_out, "q_dim": q_dim,
            "kv_dim": kv_dim, "kv_tokens": kv_tokens, "heads": heads, "kv_heads": kv_heads,
            "key_size": key_size, "layers": layers, "kv_step": kv_step, "hidden": hidden,
            "depth": depth, "vae": vae, "kld_mult": kld_mult,
            "context_transposed": context_transposed, "seed": seed}

@register("actor", "tpm")
def tpm_actor(embedding: int = 32, horizon: int = FORECAST_BARS, n_vars: int = BAR_FEATURES,
              heads: int = 8, kv_heads: int = 4, key_size: int = 32, layers: int = 9,
              kv_step: int = 1, hidden: int = 256, depth: int = 2, kld_mult: float = 1e-3,
              context_transposed: bool = True, seed: int = 11) -> dict:
    """The seed's actor (spec 1.5): (account 12, forecast 216) -> 6 actions (VAE head)."""
    return _agent("actor", ACTOR_ACCOUNT_SIZE, N_ACTIONS, True, depth, seed, embedding, horizon,
                  n_vars, heads, kv_heads, key_size, layers, kv_step, hidden, kld_mult,
                  context_transposed)

@register("critic", "tpm")
def tpm_critic(embedding: int = 32, horizon: int = FORECAST_BARS, n_vars: int = BAR_FEATURES,
               heads: int = 8, kv_heads: int = 4, key_size: int = 32, layers: int = 9,
               kv_step: int = 1, hidden: int = 256, depth: int = 3,
               context_transposed: bool = True, seed: int = 21) -> dict:
    """The seed's critic (spec 1.6): (action 6, forecast 216) -> 3 immediate rewards."""
    return _agent("critic", N_ACTIONS, N_REWARDS, False, depth, seed, embedding, horizon,
                  n_vars, heads, kv_heads, key_size, layers, kv_step, hidden, 0.0,
                  context_transposed)

# FreDF with alpha 0.7 (spec 1.4-1.6): over the 24-bar forecast per feature for the encoder;
# with a single step (count 1) it is 0.3 MSE + 0.7 MAE for the actor and critic.
LOSSES = {
    "encoder:tpm": partial(fredf_loss, n_vars=BAR_FEATURES, horizon=FORECAST_BARS, alpha=0.7,
                           time_major=True),
    "actor:tpm": partial(fredf_loss, n_vars=N_ACTIONS, horizon=1, alpha=0.7),
    "critic:tpm": partial(fredf_loss, n_vars=N_REWARDS, horizon=1, alpha=0.7),
}

__all__ = ["LOSSES", "NORM_EPS", "CrossAttentionAgent", "TPMEncoder", "tpm_actor",
           "tpm_critic", "tpm_encoder"]
