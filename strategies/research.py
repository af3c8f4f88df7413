"""Research runs: many agent passes -> trajectories -> the store (seed Research.mq5 and
ResearchRealORL.mq5, spec 4.1-4.2).

Passes run in groups of up to ``group`` passes replayed side by side (one batch policy call per
bar, :func:`~neurofx.strategies.agent.run_agent_group`), the groups in worker processes
(``spawn``: OpenCL contexts do not survive ``fork``); each pass is seeded from ``(seed, pass
index)`` and results are added to the store in pass order, so a command writes byte-identical
store files whatever the group size and the number of processes. See docs/research.md.
"""

from __future__ import annotations

import ctypes
import hashlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neurofx.collectors.deal_files import load_deal_file
from neurofx.collectors.store import AddResult, TrajectoryStore
from neurofx.collectors.trajectory import Trajectory
from neurofx.data.features import FeatureMatrix
from neurofx.deals import Deal
from neurofx.errors import NeurofxError

from .agent import run_agent_group, window_bounds
from .broker import BrokerConfig
from .feeds import BarArrays
from .ma_cross import ma_cross_backtest
from .policies import (
    NeuralPolicy,
    PolicyRows,
    RandomPolicy,
    RealORLPolicy,
    RowPolicy,
    pass_seed,
    realorl_policy,
)
from .ray_passes import iter_passes_ray

POLICIES = ("random", "neural", "real-orl")
DEFAULT_START, DEFAULT_END = "2023-01-01", "2024-01-01"
MIN_PROFIT = {"random": 10.0, "neural": 10.0, "real-orl": -10_000.0}  # seed MinProfit


# ---- deal files: neurofx.collectors.deal_files ----------------------------------------------
def example_deals(bars, start=DEFAULT_START, end=DEFAULT_END) -> list[Deal]:
    """Deals of the bundled demo (``ma_cross_backtest`` with its defaults) over 2023.

    ``neurofx/data/example_deals_ma_cross.csv`` is ``neurofx.deals.write_deals_csv(path,
    example_deals(bars))`` on the bundled bars (under two ``#`` comment lines): a RULE-BASED
    moving-average crossover, not a real trading signal.
    """
    return ma_cross_backtest(bars, start=start, end=end).result.deals


# ---- passes -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PassSpec:
    """One pass to run: its index, seed and (Real-ORL) precomputed actions."""

    index: int
    seed: int | None
    actions: np.ndarray | None = None
    source: str = ""


@dataclass(frozen=True, eq=False)
class ResearchSetup:
    """Everything a worker needs (picklable): bars and features of the whole file, window,
    broker, policy kind and options."""

    bars: BarArrays
    features: FeatureMatrix  # of the whole bar file, with its store key (bars + settings)
    start: object
    end: object
    broker: BrokerConfig
    policy: str
    policy_options: dict = field(default_factory=dict)
    models: str = ""  # neural: identity of the model files (part of every pass key)
    group: int = 1  # passes replayed side by side (results do not depend on it)


def pass_key(setup: ResearchSetup, spec: PassSpec) -> str:
    """What makes a pass the same pass: policy, seed (Real-ORL: the reconstructed actions),
    period and, for the neural policy, its models. A store records the keys it decided."""
    if spec.seed is not None:
        who = f"seed={spec.seed}"
    else:
        who = "actions=" + hashlib.sha256(np.ascontiguousarray(spec.actions)).hexdigest()[:16]
    key = f"{setup.policy}|{who}|{setup.start}..{setup.end}"
    return f"{key}|models={setup.models}" if setup.models else key


_WORKER: dict = {}
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _group_policy(setup: ResearchSetup, specs: list[PassSpec]) -> RowPolicy:
    if setup.policy == "random":
        return PolicyRows([RandomPolicy(**setup.policy_options) for _ in specs])
    if setup.policy == "neural":
        # one model pair per process, reused across its passes (reset_rows() restores its state)
        key = repr(sorted(setup.policy_options.items()))
        cached = _WORKER.get("neural")
        if cached is None or cached[0] != key:
            cached = _WORKER["neural"] = (key, NeuralPolicy(**setup.policy_options))
        return cached[1]
    return PolicyRows([RealORLPolicy(s.actions, s.source) for s in specs])


def run_group(setup: ResearchSetup, specs: list[PassSpec]) -> list[Trajectory]:
    """Run ``specs`` side by side (one replay, one policy call per bar) and return their
    trajectories (immediate rewards) in order; each is the same as :func:`run_pass` gives."""
    results = run_agent_group(setup.bars, setup.features, _group_policy(setup, specs),
                              [s.seed for s in specs], setup.start, setup.end, setup.broker,
                              zero_means_none=setup.policy == "real-orl")
    out = []
    for spec, res in zip(specs, results, strict=True):
        extra = {"pass": spec.index}
        if spec.source:
            extra["deals_file"] = spec.source
        out.append(res.to_trajectory(setup.policy, extra))
    return out


def run_pass(setup: ResearchSetup, spec: PassSpec) -> Trajectory:
    """Run one pass and return its trajectory (immediate rewards)."""
    return run_group(setup, [spec])[0]


def groups_of(specs: list[PassSpec], group: int, jobs: int = 1) -> list[list[PassSpec]]:
    """Consecutive groups of at most ``group`` passes, smaller when that keeps ``jobs``
    processes busy (every process gets a group when there are passes enough)."""
    size = max(1, min(group, -(-len(specs) // max(jobs, 1))))
    return [specs[i:i + size] for i in range(0, len(specs), size)]


def _init_worker(setup: ResearchSetup, parent: int) -> None:
    """A pool worker's start; ``parent`` is the PID of the process that made the pool (it may
    be gone already: a worker starts slowly)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    os.environ["NEUROFX_VERBOSE"] = "0"  # the parent named the device already
    _WORKER.clear()
    _WORKER["setup"] = setup
    sys.stderr = _QuietOrphanStream(sys.stderr, parent)
    _die_with_parent(parent)


def _die_with_parent(parent: int) -> None:
    """A worker whose parent dies (killed, say) dies at once and silently, instead of
    failing to send its result and printing a BrokenPipe traceback: on Linux the kernel sends
    it SIGKILL (``PR_SET_PDEATHSIG``); elsewhere a thread watches the parent."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl failed")
    except (OSError, AttributeError):
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(0)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.1)
    os._exit(0)


class _QuietOrphanStream:
    """A worker's stderr that says nothing once its parent is gone. A worker can meet the
    closed result pipe a moment before the kernel re-parents (or kills) it, so the crash report
    of a pool worker (``Process <name>:`` then a traceback) first waits briefly for that."""

    def __init__(self, stream, parent: int, wait_s: float = 1.0):
        self.stream, self.parent, self.wait_s = stream, parent, wait_s

    def write(self, text: str) -> int:
        if text.startswith("Process "):
            deadline = time.monotonic() + self.wait_s
            while os.getppid() == self.parent and time.monotonic() < deadline:
                time.sleep(0.01)
        if os.getppid() != self.parent:
            os._exit(0)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _worker_group(specs: list[PassSpec]) -> tuple[int, list[Trajectory]]:
    return specs[0].index, run_group(_WORKER["setup"], specs)


def iter_passes(setup: ResearchSetup, specs: list[PassSpec], jobs: int = 1,
                executor: str = "local", address: str = ""
                ) -> Iterator[tuple[PassSpec, Trajectory]]:
    """Run ``specs`` in groups of ``setup.group`` on ``jobs`` processes (``executor="ray"``:
    as Ray tasks, on the cluster at ``address`` or a local instance of ``jobs`` CPUs); yield
    results in pass order."""
    groups = groups_of(specs, setup.group, jobs)
    if executor == "ray":
        for group, trajs in iter_passes_ray(run_group, setup, groups, jobs, address):
            yield from zip(group, trajs, strict=True)
        return
    if jobs <= 1 or len(groups) <= 1:
        for group in groups:
            yield from zip(group, run_group(setup, group), strict=True)
        return
    ctx = mp.get_context("spawn")
    # if this process is killed, its resource tracker would warn about the pool's semaphores
    os.environ.setdefault("PYTHONWARNINGS", "ignore::UserWarning:multiprocessing.resource_tracker")
    pool = ctx.Pool(min(jobs, len(groups)), initializer=_init_worker,
                    initargs=(setup, os.getpid()))
    try:
        by_first = {g[0].index: g for g in groups}
        order = [g[0].index for g in groups]
        ready: dict[int, list[Trajectory]] = {}
        nxt = 0
        for first, trajs in pool.imap_unordered(_worker_group, groups):
            ready[first] = trajs
            while nxt < len(order) and order[nxt] in ready:
                i = order[nxt]
                yield from zip(by_first[i], ready.pop(i), strict=True)
                nxt += 1
        pool.close()
    finally:
        pool.terminate()
        pool.join()


# ---- the whole run ------------------------------------------------------------------------
@dataclass
class ResearchSummary:
    passes: int = 0
    kept: int = 0
    discarded: int = 0
    profits: list[float] = field(default_factory=list)
    steps: int = 0
    interrupted: bool = False
    skipped: int = 0  # passes the store had decided already (same key)

    def to_text(self, store: TrajectoryStore) -> str:
        lines = [f"passes {self.passes}: kept {self.kept}, discarded {self.discarded}"
                 + (" (interrupted)" if self.interrupted else "")]
        if self.skipped:
            lines.append(f"skipped {self.skipped} passes the store had decided already (same "
                         "policy, seed and period)")
        if self.profits:
            p = np.array(self.profits)
            lines.append(f"profit min {p.min():.2f}  median {np.median(p):.2f}  "
                         f"max {p.max():.2f} USD; {self.steps} steps in the last pass")
        lines.append(f"store {store.path}: {len(store)} of {store.capacity} trajectories")
        return "\n".join(lines)


def pass_specs(policy: str, passes: int, seed: int, deal_files=(), bars: BarArrays | None = None,
               broker: BrokerConfig | None = None, symbol: str = "EURUSD",
               file_bars: BarArrays | None = None, shift_hours: float = 0.0) -> list[PassSpec]:
    """The passes of a run: ``passes`` seeded passes, or one pass per Real-ORL deal file
    (``bars`` = the pass window; deal times shifted by ``shift_hours``, checked against the
    whole bar file ``file_bars`` with notes on stderr: collectors/deal_files.py)."""
    if policy not in POLICIES:
        raise NeurofxError(f"unknown policy {policy!r}; valid: {', '.join(POLICIES)}")
    if policy != "real-orl":
        if passes < 1:
            raise NeurofxError(f"--passes must be >= 1, got {passes}")
        return [PassSpec(i, pass_seed(seed, i)) for i in range(passes)]
    specs = []
    for i, path in enumerate(deal_files):
        b = broker or BrokerConfig()
        loaded = load_deal_file(path, symbol, file_bars, shift_hours, b.point,
                                b.min_spread_points)
        for note in loaded.notes:
            print(f"neurofx research: {note}", file=sys.stderr)
        pol = realorl_policy(loaded.deals, bars, broker, source=str(path))
        specs.append(PassSpec(i, None, pol.actions, Path(path).name))
    if not specs:
        raise NeurofxError("--policy real-orl needs at least one --deals FILE")
    return specs


def collect(setup: ResearchSetup, specs: list[PassSpec], store: TrajectoryStore,
            min_profit: float, jobs: int = 1,
            on_result: Callable[[PassSpec, Trajectory, AddResult], None] | None = None,
            summary: ResearchSummary | None = None, executor: str = "local",
            address: str = "") -> ResearchSummary:
    """Run the passes and add each to ``store`` in pass order (seed buffer rules).

    Ctrl-C stops the run: trajectories committed so far stay, ``summary.interrupted`` is set
    and the ``KeyboardInterrupt`` propagates (pass your own ``summary`` to report it).
    """
    summary = ResearchSummary() if summary is None else summary
    try:
        for spec, traj in iter_passes(setup, specs, jobs, executor, address):
            result = store.add(traj, min_profit=min_profit, key=pass_key(setup, spec))
            summary.passes += 1
            summary.kept += result.kept
            summary.discarded += not result.kept
            summary.profits.append(traj.profit)
            summary.steps = traj.steps
            if on_result is not None:
                on_result(spec, traj, result)
    except KeyboardInterrupt:
        summary.interrupted = True
        raise
    return summary


def cache_neural_policy(options: dict, policy: NeuralPolicy) -> None:
    """Let in-process passes (``jobs == 1``) reuse an already built policy for ``options``."""
    _WORKER["neural"] = (repr(sorted(options.items())), policy)


def window_of(bars: BarArrays, start, end) -> BarArrays:
    """The bars with ``start <= time < end``."""
    lo, hi = window_bounds(bars.time_s, start, end)
    return BarArrays(**{k: v[lo:hi] for k, v in bars.__dict__.items()})
