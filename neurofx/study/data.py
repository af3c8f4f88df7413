"""Trajectories for training: loading a store, the train/validation split, and the seed's
sub-sequence sampling (spec 5.1) arranged as batches of chronological sub-sequences.

A *window* is one sub-sequence: trajectory ``traj``, steps ``start .. start + length - 1``.
The sampler draws the trajectory with the seed's profit weights (:func:`trajectory_weights`
of the training trajectories' scores) and the start with :func:`sample_start` (density
``-ln x``: early steps are favoured), then ``length = min(seq_len, steps - n_forecast -
start)``: the sub-sequence ends where the 24-bar target would run past the trajectory, as the
seed's ``for i = st .. min(st + 100, Total - NForecast) - 1``.

A batch of B windows runs in parallel: step ``j`` of every window forms one forward of B rows.
Windows shorter than the longest one go inactive (mask 0) after their last step and repeat
that step's row, so recurrent state keeps a fixed batch size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurofx.collectors.sampling import sample_start, sample_trajectory, trajectory_weights
from neurofx.collectors.store import TrajectoryStore
from neurofx.collectors.trajectory import Trajectory
from neurofx.errors import NeurofxError
from neurofx.schema import FORECAST_BARS

from .targets import clones


@dataclass(frozen=True)
class Window:
    traj: int
    start: int
    length: int


@dataclass(frozen=True)
class Batch:
    """Index arrays of a batch: ``traj`` (B,), ``index`` (S, B) step numbers, ``mask`` (S, B)
    1.0 where the window is still active at step j."""

    traj: np.ndarray
    index: np.ndarray
    mask: np.ndarray

    @property
    def steps(self) -> int:
        return int(self.index.shape[0])

    @property
    def samples(self) -> int:
        return int(self.mask.sum())


def make_batch(windows: list[Window]) -> Batch:
    steps = max(w.length for w in windows)
    j = np.arange(steps)[:, None]
    start = np.array([w.start for w in windows])[None, :]
    length = np.array([w.length for w in windows])[None, :]
    index = start + np.minimum(j, length - 1)
    mask = (j < length).astype(np.float32)
    return Batch(np.array([w.traj for w in windows], dtype=np.int64), index, mask)


def min_steps(n_forecast: int = FORECAST_BARS) -> int:
    """Shortest trajectory :func:`sample_start` can draw from."""
    return n_forecast + 4


class WindowSampler:
    """Draws windows from trajectories ``ids`` (indices into ``trajs``) with ``rng``."""

    def __init__(self, trajs: list[Trajectory], ids: list[int], seq_len: int,
                 rng: np.random.Generator, n_forecast: int = FORECAST_BARS):
        self.trajs, self.ids, self.seq_len, self.rng = trajs, list(ids), seq_len, rng
        self.n_forecast = n_forecast
        self.weights = trajectory_weights([trajs[i].score for i in self.ids])

    def window(self) -> Window:
        k = self.ids[sample_trajectory(self.rng, self.weights)]
        steps = self.trajs[k].steps
        start = sample_start(self.rng, steps, self.n_forecast)
        return Window(k, start, min(self.seq_len, steps - self.n_forecast - start))

    def batch(self, size: int) -> Batch:
        return make_batch([self.window() for _ in range(size)])


@dataclass
class Dataset:
    """The usable trajectories of a store, in memory, with their split."""

    path: str
    files: list[str]
    trajs: list[Trajectory]
    train: list[int]
    val: list[int]

    @property
    def nbytes(self) -> int:
        return sum(t.states.nbytes + t.accounts.nbytes + t.actions.nbytes + t.rewards.nbytes
                   for t in self.trajs)


def load_dataset(store_path, val_share: float, seed: int,
                 n_forecast: int = FORECAST_BARS) -> Dataset:
    """Load every trajectory long enough to sample from, then split whole trajectories.

    The split is stratified by :func:`~neurofx.study.targets.clones` (profitable or not), so
    both halves see cloning targets whenever the store has two or more profitable passes.
    """
    store = TrajectoryStore.open(Path(store_path))
    if len(store) == 0:
        raise NeurofxError(f"{store_path}: the trajectory store is empty; collect passes with "
                           "'neurofx research' first")
    if not 0.0 <= val_share < 1.0:
        raise NeurofxError(f"--val-share {val_share}: must be in [0, 1)")
    need = min_steps(n_forecast)
    keep = [i for i, e in enumerate(store.entries) if e["steps"] >= need]
    if not keep:
        raise NeurofxError(f"{store_path}: no trajectory has the {need} steps needed to sample "
                           f"a sub-sequence (longest: {max(e['steps'] for e in store.entries)})")
    trajs = [store.load(i) for i in keep]
    files = [store.entries[i]["file"] for i in keep]
    rng = np.random.default_rng([seed, 3])
    val: list[int] = []
    for group in ([i for i, t in enumerate(trajs) if clones(t)],
                  [i for i, t in enumerate(trajs) if not clones(t)]):
        n_val = 0
        if val_share > 0 and len(group) >= 2:  # at least one each side
            n_val = min(max(int(round(val_share * len(group))), 1), len(group) - 1)
        val += [group[k] for k in sorted(rng.permutation(len(group))[:n_val])]
    val = sorted(val)
    train = [i for i in range(len(trajs)) if i not in set(val)]
    if not train:  # one trajectory in each group: keep them all for training
        train, val = list(range(len(trajs))), []
    return Dataset(str(store_path), files, trajs, train, val)


def validation_batches(data: Dataset, ids: list[int], seq_len: int, batch: int,
                       n_batches: int, seed: int) -> list[Batch]:
    """Fixed validation windows, drawn once with their own RNG (same seed -> same windows)."""
    if not ids:
        return []
    sampler = WindowSampler(data.trajs, ids, seq_len, np.random.default_rng([seed, 7]))
    return [sampler.batch(batch) for _ in range(n_batches)]
