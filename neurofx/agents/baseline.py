"""The baseline agent: small MLPs of the schema's sizes (real, trainable models)."""

from __future__ import annotations

from neurofx.schema import ACTOR_ACCOUNT_SIZE, FORECAST_SIZE, N_ACTIONS, N_REWARDS, STATE_SIZE

from .registry import check_sizes, register


def _dense(n_in, n_out, act, seed):
    return {"type": "Dense", "n_in": n_in, "n_out": n_out, "activation": act, "bias": True,
            "seed": seed}


@register("encoder", "baseline")
def baseline_encoder(hidden: int = 256, seed: int = 1, norm_window: int = 10000) -> dict:
    """Running per-element normaliser (the seed's BatchNorm) -> MLP 1080-256-256-216 (tanh).

    The forecast is the next 24 bars x 9 features in standardised units (see study)."""
    check_sizes("encoder", "baseline", hidden=hidden, norm_window=norm_window)
    return {"type": "Sequential", "layers": [
        {"type": "BatchNorm", "n": STATE_SIZE, "mode": "running", "window": norm_window},
        _dense(STATE_SIZE, hidden, "tanh", seed),
        _dense(hidden, hidden, "tanh", seed + 1),
        _dense(hidden, FORECAST_SIZE, "none", seed + 2),
    ]}


@register("actor", "baseline")
def baseline_actor(hidden: int = 256, seed: int = 11, kld_mult: float = 1e-3) -> dict:
    """[account 12 ; forecast 216] -> MLP -> (mu, logvar) of 6 actions -> VAE head."""
    check_sizes("actor", "baseline", hidden=hidden)
    return {"type": "Sequential", "layers": [
        {"type": "Concat"},
        _dense(ACTOR_ACCOUNT_SIZE + FORECAST_SIZE, hidden, "sigmoid", seed),
        _dense(hidden, hidden, "sigmoid", seed + 1),
        _dense(hidden, 2 * N_ACTIONS, "none", seed + 2),
        {"type": "VAEHead", "k": N_ACTIONS, "kld_mult": kld_mult, "seed": seed + 3},
    ]}


@register("critic", "baseline")
def baseline_critic(hidden: int = 256, seed: int = 21) -> dict:
    """[action 6 ; forecast 216] -> MLP -> 3 immediate rewards."""
    check_sizes("critic", "baseline", hidden=hidden)
    return {"type": "Sequential", "layers": [
        {"type": "Concat"},
        _dense(N_ACTIONS + FORECAST_SIZE, hidden, "sigmoid", seed),
        _dense(hidden, hidden, "sigmoid", seed + 1),
        _dense(hidden, N_REWARDS, "none", seed + 2),
    ]}
