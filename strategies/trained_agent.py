"""The trained agent of a test run: find its encoder and actor files and check they fit.

``neurofx test --agent neural`` reads ``<runs.root>/NAME/encoder.npz`` and ``actor.npz`` (or the
files given), and refuses with one line naming the ``neurofx`` command to run first when one is
missing or of another architecture. The replay itself is
``strategies.backtest.run_neural_passes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from neurofx.errors import NeurofxError

from .policies import NeuralPolicy

MODEL_FILES = {"encoder": "encoder.npz", "actor": "actor.npz"}


def _first_steps(run: str) -> str:
    return (f"collect trajectories with 'neurofx research --store STORE', then run 'neurofx "
            f"study encoder --store STORE --run {run}' and 'neurofx study actor --store STORE "
            f"--run {run}', or test the demo with --agent ma-cross")


def model_paths(runs_root: str | Path, run: str, encoder: str | Path | None = None,
                actor: str | Path | None = None) -> dict[str, Path]:
    """The encoder and actor files (``<root>/<run>/{encoder,actor}.npz`` unless given);
    one-line errors naming the ``neurofx`` command to run first when one is missing."""
    folder = Path(runs_root) / run
    given = {"encoder": encoder, "actor": actor}
    paths = {role: Path(given[role]) if given[role] else folder / name
             for role, name in MODEL_FILES.items()}
    if not any(given.values()) and not folder.is_dir():
        raise NeurofxError(f"{folder}: no such run; {_first_steps(run)}")
    for role, path in paths.items():
        if not path.is_file():
            how = (f"run 'neurofx study {role} --run {run}' first" if not given[role]
                   else f"check --{role}, or run 'neurofx study {role} --run {run}'")
            raise NeurofxError(f"{path}: no trained {role}; {how}")
    return paths


@dataclass(frozen=True)
class LoadedPolicy:
    """The test's :class:`NeuralPolicy` with the files it came from."""

    policy: object
    paths: dict[str, Path]
    forecast_size: int

    def describe(self) -> dict[str, str]:
        return {f"{role} file": str(p) for role, p in self.paths.items()}


def load_test_policy(paths: Mapping[str, Path], run: str, stochastic: bool) -> LoadedPolicy:
    """Load encoder and actor and check they fit the state, each other and the 6 actions.

    The check is :meth:`NeuralPolicy.check_models`, the same as neural research's.
    """
    retrain = (f"retrain them with 'neurofx study encoder --run {run}' and "
               f"'neurofx study actor --run {run}'")
    policy = NeuralPolicy(encoder=paths["encoder"], actor=paths["actor"], stochastic=stochastic)
    forecast_size = policy.check_models(retrain)
    return LoadedPolicy(policy, dict(paths), forecast_size)
