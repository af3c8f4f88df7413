"""The agent's models by name: encoder (state window -> forecast), actor (account vector +
forecast -> action distribution), critic (action + forecast -> immediate rewards).

Builders are registered by name so configs and model files can select them; each returns a
module description (JSON) that :class:`~neurofx.nn.model.Model` builds. The baseline MLPs
(:mod:`.baseline`) and the seed's TPM models (:mod:`.tpm`) register here when
:mod:`neurofx.agents` is imported. Their sizes are :mod:`neurofx.schema`'s.
"""

from __future__ import annotations

from collections.abc import Callable

from neurofx.errors import NeurofxError
from neurofx.nn.model import Model

ENCODERS: dict[str, Callable[..., dict]] = {}
ACTORS: dict[str, Callable[..., dict]] = {}
CRITICS: dict[str, Callable[..., dict]] = {}
_REGISTRIES = {"encoder": ENCODERS, "actor": ACTORS, "critic": CRITICS}
# what model name "auto" (the study's default) means per role: the fitted skip encoder (it
# beats the linear forecast baselines; docs/models.md) and the seed's TPM actor and critic
DEFAULT_MODELS = {"encoder": "skip", "actor": "tpm", "critic": "tpm"}
AUTO = "auto"


def resolve(role: str, name: str) -> str:
    """``name``, or the role's default model for ``"auto"``."""
    return DEFAULT_MODELS.get(role, name) if name == AUTO else name


def register(role: str, name: str):
    """Decorator: register a builder ``fn(**overrides) -> module description``."""
    def wrap(fn):
        _REGISTRIES[role][name] = fn
        return fn
    return wrap


def check_sizes(role: str, name: str, **sizes) -> None:
    """One line naming the first size override that is not an integer >= 1."""
    for key, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise NeurofxError(f"{role} model {name!r}: override {key}={value!r} must be an "
                               "integer >= 1")


def describe(role: str, name: str, **overrides) -> dict:
    """The module description of model ``name`` for ``role`` with size overrides."""
    registry = _REGISTRIES.get(role)
    if registry is None:
        raise NeurofxError(f"unknown model role {role!r}; valid: {', '.join(_REGISTRIES)}")
    name = resolve(role, name)
    builder = registry.get(name)
    if builder is None:
        raise NeurofxError(f"unknown {role} model {name!r}; valid: {', '.join(sorted(registry))}")
    try:
        return builder(**overrides)
    except TypeError as exc:
        raise NeurofxError(f"{role} model {name!r}: bad override ({exc})") from None


def build(role: str, name: str, model_name: str | None = None, **overrides):
    """A :class:`Model` of the named architecture."""
    return Model(describe(role, name, **overrides), name=model_name or role)


def names(role: str) -> list[str]:
    """The registered model names of ``role``, sorted."""
    return sorted(_REGISTRIES[role])
