"""Optimizers over a :class:`~neurofx.nn.parameters.ParameterStore`, one fused kernel each.

``make_optimizer("adam-mini", store, lr=1e-3)`` picks one by name (configs, CLI); the names
are in :data:`OPTIMIZERS`.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..parameters import ParameterStore
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adam_mini import AdamMini
from .base import Optimizer, OptimizerError
from .nadam import NAdam
from .rmsprop import RMSprop
from .rprop import Rprop
from .sgd import SGD

# name -> (class, preset hyper-parameters the caller may override)
_REGISTRY: dict[str, tuple[type[Optimizer], dict[str, Any]]] = {
    "sgd": (SGD, {}),
    "momentum": (SGD, {"momentum": 0.9}),
    "nesterov": (SGD, {"momentum": 0.9, "nesterov": True}),
    "rprop": (Rprop, {}),
    "adagrad": (Adagrad, {}),
    "rmsprop": (RMSprop, {}),
    "adam": (Adam, {}),
    "adamw": (AdamW, {}),
    "nadam": (NAdam, {}),
    "adadelta": (Adadelta, {}),
    "adam-mini": (AdamMini, {}),
}
_ALIASES = {"adam_mini": "adam-mini", "adammini": "adam-mini"}

OPTIMIZERS: tuple[str, ...] = tuple(_REGISTRY)


def optimizer_key(name: str) -> str:
    """The registered name of optimizer ``name`` (case and aliases folded), or OptimizerError."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise OptimizerError(f"unknown optimizer {name!r}; valid choices: {', '.join(OPTIMIZERS)}")
    return key


def make_optimizer(name: str, store: ParameterStore, **hyper: Any) -> Optimizer:
    """Build the optimizer called ``name`` on ``store``; ``hyper`` overrides its defaults."""
    key = optimizer_key(name)
    cls, preset = _REGISTRY[key]
    valid = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "store")]
    unknown = sorted(set(hyper) - set(valid))
    if unknown:
        raise OptimizerError(f"optimizer {key!r}: unknown hyper-parameter {unknown[0]!r}; "
                             f"valid: {', '.join(valid)}")
    return cls(store, **{**preset, **hyper})


__all__ = [
    "OPTIMIZERS", "SGD", "Adadelta", "Adagrad", "Adam", "AdamMini", "AdamW", "NAdam",
    "Optimizer", "OptimizerError", "RMSprop", "Rprop", "make_optimizer", "optimizer_key",
]
