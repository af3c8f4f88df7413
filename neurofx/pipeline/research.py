"""Research: replay the configured bars with a policy and collect its passes into the
trajectory store (seed Research.mq5 / ResearchRealORL.mq5; docs/research.md)."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from neurofx.cluster import import_ray
from neurofx.collectors.store import (
    AddResult,
    MigrateResult,
    StoreInfo,
    TrajectoryStore,
    migrate_to_v2,
)
from neurofx.collectors.trajectory import Trajectory
from neurofx.config import Config, run_dir, snapshot
from neurofx.data.features import FeatureMatrix, bars_digest, feature_settings, first_valid_row
from neurofx.errors import NeurofxError
from neurofx.locks import exclusive
from neurofx.schema import HISTORY_BARS
from neurofx.strategies import research
from neurofx.strategies.agent import window_bounds
from neurofx.strategies.feeds import BarArrays
from neurofx.strategies.policies import NeuralPolicy

EXAMPLE_DEALS = "example_deals_ma_cross.csv"
RUN_NAME = "research"  # the run folder of research's config snapshots


@dataclass(frozen=True)
class ResearchResult:
    """What a research run did: its pass summary and the store it added to."""

    summary: research.ResearchSummary
    store: TrajectoryStore

    def to_text(self) -> str:
        return self.summary.to_text(self.store)


class ResearchInterrupted(KeyboardInterrupt):
    """Ctrl-C during the passes; ``result`` holds what was committed to the store."""

    def __init__(self, result: ResearchResult):
        super().__init__()
        self.result = result


def store_path(cfg: Config) -> Path:
    """``research.store``, or ``<runs.root>/trajectories`` when it is empty."""
    return Path(cfg.research.store) if cfg.research.store else Path(cfg.runs.root) / "trajectories"


def store_info(cfg: Config) -> StoreInfo:
    """Counts, steps, profits and action statistics of the configured store."""
    return TrajectoryStore.open(store_path(cfg)).info()


def migrate_store(cfg: Config) -> MigrateResult:
    """Rewrite the configured version-1 store as version 2 over the configured bars and
    feature settings (the ones its passes were made on; checked step by step)."""
    path = store_path(cfg)
    TrajectoryStore.open(path)  # no store, or a broken one: one line before any work
    bars = cfg.data.load_bars()
    matrix = feature_matrix(cfg, bars, cfg.data.features(bars))
    with exclusive(path, "trajectory store"):
        store = TrajectoryStore.open(path)
        return migrate_to_v2(store, matrix, BarArrays.from_frame(bars).time_s)


def resolve(cfg: Config) -> Config:
    """``cfg`` with the automatic research values a run uses: ``min_profit = "auto"`` becomes
    the seed's value for the policy and ``jobs = 0`` the CPU count; checks that the settings fit
    together."""
    r = cfg.research
    if r.policy != "real-orl" and r.deals:
        raise NeurofxError("--deals (research.deals) is for --policy real-orl; drop it or add "
                           "--policy real-orl")
    min_profit = research.MIN_PROFIT[r.policy] if r.min_profit == "auto" else r.min_profit
    jobs = r.jobs or os.cpu_count() or 1
    return dataclasses.replace(cfg, research=dataclasses.replace(r, min_profit=min_profit,
                                                                 jobs=jobs))


def deal_files(cfg: Config) -> tuple[list[str], bool]:
    """Real-ORL's deal files and whether they are the bundled example (no files given)."""
    if cfg.research.policy != "real-orl" or cfg.research.deals:
        return list(cfg.research.deals), False
    return [str(importlib.resources.files("neurofx.data").joinpath(EXAMPLE_DEALS))], True


def run_research(cfg: Config, command: str = "neurofx research",
                 on_start: Callable[[int], None] | None = None,
                 on_result: Callable[[research.PassSpec, Trajectory, AddResult, research.
                                      ResearchSummary], None] | None = None) -> ResearchResult:
    """Collect the passes of ``cfg.research`` (resolved with :func:`resolve` first) into the
    store. Every input is checked before the first pass; then ``on_start(passes)`` is called,
    and ``on_result(spec, trajectory, add_result, summary)`` after each pass, in order. Ctrl-C
    raises :class:`ResearchInterrupted` with every committed pass kept."""
    cfg = resolve(cfg)
    r = cfg.research
    if r.executor == "ray":
        import_ray()  # not installed: one line saying how, before any work
    path = store_path(cfg)
    if path.exists():  # a corrupt or foreign directory stops the run before any work
        TrajectoryStore.open(path, create=True, capacity=r.capacity)
    bars = cfg.data.load_bars()
    features = cfg.data.features(bars)
    arrays = BarArrays.from_frame(bars)
    check_window(arrays, features, r.start, r.end)
    matrix = feature_matrix(cfg, bars, features)
    files, _ = deal_files(cfg)
    window = research.window_of(arrays, r.start, r.end)
    specs = research.pass_specs(r.policy, r.passes, r.seed, files, window, cfg.broker,
                                cfg.broker.symbol, file_bars=arrays,
                                shift_hours=r.deals_shift_hours)
    options = neural_options(cfg)
    setup = research.ResearchSetup(arrays, matrix, r.start, r.end, cfg.broker, r.policy,
                                   options, models_identity(options), r.group)
    with exclusive(path, "trajectory store"):  # one writer at a time
        store = TrajectoryStore.open(path, create=True, capacity=r.capacity)
        store.check_matrix(matrix)  # passes of other bars or settings: one line, before work
        snapshot(cfg, run_dir(cfg, RUN_NAME), command)
        # a rerun (after a crash or Ctrl-C) goes on where the last one stopped
        decided = set(store.decided)
        todo = [s for s in specs if research.pass_key(setup, s) not in decided]
        summary = research.ResearchSummary(skipped=len(specs) - len(todo))
        specs = todo
        if on_start is not None:
            on_start(len(specs))
        try:
            research.collect(setup, specs, store, r.min_profit,
                             jobs=min(r.jobs, len(specs)) if r.executor == "local" else r.jobs,
                             executor=r.executor, address=r.address,
                             on_result=None if on_result is None else (
                                 lambda spec, traj, added: on_result(spec, traj, added, summary)),
                             summary=summary)
        except KeyboardInterrupt:
            raise ResearchInterrupted(ResearchResult(summary, store)) from None
    return ResearchResult(summary, store)


def feature_matrix(cfg: Config, bars: pd.DataFrame, features) -> FeatureMatrix:
    """The features of the bar file with the key a version-2 store checks (bars + settings)."""
    return FeatureMatrix.from_features(features, bars_digest(bars),
                                       feature_settings(cfg.data.tick_volume))


def models_identity(options: dict) -> str:
    """The neural policy's models as part of a pass key: the files' content hashes (a
    retrained actor makes new passes), or the architecture names."""
    if not options:
        return ""
    parts = []
    for role in ("encoder", "actor"):
        spec = Path(str(options[role]))
        parts.append(hashlib.sha256(spec.read_bytes()).hexdigest()[:16] if spec.is_file()
                     else str(options[role]))
    return ",".join(parts) + ("" if options["stochastic"] else ",mean")


def neural_options(cfg: Config) -> dict:
    """The neural policy's options ({} for other policies). Its models are built and checked
    here, so bad or swapped model files fail before any pass; the policy is reused by
    in-process passes (``jobs == 1``)."""
    r = cfg.research
    if r.policy != "neural":
        return {}
    options = {"encoder": r.encoder, "actor": r.actor, "stochastic": r.explore}
    policy = NeuralPolicy(**options)
    policy.check_models("give --encoder an encoder file and --actor an actor file ('neurofx "
                        "study encoder|actor' write them), or a model name")
    research.cache_neural_policy(options, policy)
    return options


def check_window(arrays: BarArrays, features, start: str, end: str) -> None:
    """One line when the bars hold nothing in [start, end) or the first state of a pass from
    ``start`` lacks warmed-up history."""
    first_valid = first_valid_row(features)
    lo, _ = window_bounds(arrays.time_s, start, end)
    if lo - HISTORY_BARS < first_valid:
        raise NeurofxError(
            f"--start {start}: the first state needs {HISTORY_BARS} bars with warmed-up "
            f"indicators before it; the data allows a start from bar "
            f"{_bar_time(arrays, first_valid + HISTORY_BARS)} (fix: a later --start)")


def _bar_time(arrays: BarArrays, index: int) -> str:
    if index >= len(arrays):
        return "(none: the file is too short)"
    return f"{pd.Timestamp(int(arrays.time_s[index]), unit='s'):%Y-%m-%d %H:%M}"
