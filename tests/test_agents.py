"""The agent-model registry: names per role, and size overrides checked in one line."""

import pytest

from neurofx import agents
from neurofx.errors import NeurofxError


def test_every_role_has_the_baseline_and_tpm_models():
    for role in ("encoder", "actor", "critic"):
        assert agents.names(role) == (["baseline", "skip", "tpm"] if role == "encoder"
                                      else ["baseline", "tpm"])


def test_auto_names_each_roles_default_model():
    assert [agents.resolve(r, "auto") for r in ("encoder", "actor", "critic")] == \
        ["skip", "tpm", "tpm"]
    assert agents.resolve("encoder", "tpm") == "tpm"
    assert agents.describe("encoder", "auto")["type"] == "SkipEncoder"


@pytest.mark.parametrize("role, override", [
    ("encoder", {"hidden": -5}), ("encoder", {"hidden": "abc"}), ("actor", {"hidden": 0}),
    ("critic", {"hidden": 2.5}), ("encoder", {"norm_window": True}),
])
def test_baseline_size_overrides_are_checked(role, override):
    (key, value), = override.items()
    with pytest.raises(NeurofxError, match=rf"^{role} model 'baseline': override {key}="
                       rf"{value!r} must be an integer >= 1$"):
        agents.describe(role, "baseline", **override)


def test_unknown_names_and_overrides_are_one_line_errors():
    with pytest.raises(NeurofxError,
                       match=r"^unknown encoder model 'mlp'; valid: baseline, skip, tpm$"):
        agents.describe("encoder", "mlp")
    with pytest.raises(NeurofxError, match=r"^actor model 'baseline': bad override"):
        agents.describe("actor", "baseline", width=3)
