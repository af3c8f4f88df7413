"""The agent's models by name: encoder (state window -> forecast), actor (account vector +
forecast -> action distribution), critic (action + forecast -> immediate rewards).

Builders are registered by name so configs and model files can select them; each returns a
module description (JSON) that :class:`~neurofx.nn.model.Model` builds. The seed's TPM models
register here too; the baseline MLPs below are real, trainable models of the spec's sizes.

Sizes (spec section 10): state 120 bars x 9 features = 1080, forecast 24 x 9 = 216, account
vector 12, actions 6, rewards 3.
"""

from __future__ import annotations

from collections.abc import Callable

from neurofx.errors import NeurofxError

STATE_SIZE = 1080
FORECAST_SIZE = 216
ACCOUNT_SIZE = 12
N_ACTIONS = 6
N_REWARDS = 3

ENCODERS: dict[str, Callable[..., dict]] = {}
ACTORS: dict[str, Callable[..., dict]] = {}
CRITICS: dict[str, Callable[..., dict]] = {}
_REGISTRIES = {"encoder": ENCODERS, "actor": ACTORS, "critic": CRITICS}


def register(role: str, name: str):
    """Decorator: register a builder ``fn(**overrides) -> module description``."""
    def wrap(fn):
        _REGISTRIES[role][name] = fn
        return fn
    return wrap


def describe(role: str, name: str, **overrides) -> dict:
    """The module description of model ``name`` for ``role`` with size overrides."""
    registry = _REGISTRIES.get(role)
    if registry is None:
        raise NeurofxError(f"unknown model role {role!r}; valid: {', '.join(_REGISTRIES)}")
    builder = registry.get(name)
    if builder is None:
        raise NeurofxError(f"unknown {role} model {name!r}; valid: {', '.join(sorted(registry))}")
    try:
        return builder(**overrides)
    except TypeError as exc:
        raise NeurofxError(f"{role} model {name!r}: bad override ({exc})") from None


def build(role: str, name: str, model_name: str | None = None, **overrides):
    """A :class:`Model` of the named architecture."""
    from .model import Model

    return Model(describe(role, name, **overrides), name=model_name or role)


def _dense(n_in, n_out, act, seed):
    return {"type": "Dense", "n_in": n_in, "n_out": n_out, "activation": act, "bias": True,
            "seed": seed}


@register("encoder", "baseline")
def baseline_encoder(hidden: int = 256, seed: int = 1, norm_window: int = 10000) -> dict:
    """Running per-element normaliser (the seed's BatchNorm) -> MLP 1080-256-256-216 (tanh).

    The forecast is the next 24 bars x 9 features in standardised units (see study)."""
    return {"type": "Sequential", "layers": [
        {"type": "BatchNorm", "n": STATE_SIZE, "mode": "running", "window": norm_window},
        _dense(STATE_SIZE, hidden, "tanh", seed),
        _dense(hidden, hidden, "tanh", seed + 1),
        _dense(hidden, FORECAST_SIZE, "none", seed + 2),
    ]}


@register("actor", "baseline")
def baseline_actor(hidden: int = 256, seed: int = 11, kld_mult: float = 1e-3) -> dict:
    """[account 12 ; forecast 216] -> MLP -> (mu, logvar) of 6 actions -> VAE head."""
    return {"type": "Sequential", "layers": [
        {"type": "Concat"},
        _dense(ACCOUNT_SIZE + FORECAST_SIZE, hidden, "sigmoid", seed),
        _dense(hidden, hidden, "sigmoid", seed + 1),
        _dense(hidden, 2 * N_ACTIONS, "none", seed + 2),
        {"type": "VAEHead", "k": N_ACTIONS, "kld_mult": kld_mult, "seed": seed + 3},
    ]}


@register("critic", "baseline")
def baseline_critic(hidden: int = 256, seed: int = 21) -> dict:
    """[action 6 ; forecast 216] -> MLP -> 3 immediate rewards."""
    return {"type": "Sequential", "layers": [
        {"type": "Concat"},
        _dense(N_ACTIONS + FORECAST_SIZE, hidden, "sigmoid", seed),
        _dense(hidden, hidden, "sigmoid", seed + 1),
        _dense(hidden, N_REWARDS, "none", seed + 2),
    ]}
