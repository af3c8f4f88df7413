"""`neurofx research`: collect trajectories with agent passes; `neurofx research info`."""

from __future__ import annotations

import importlib.resources
import os
import shlex
import sys
from pathlib import Path

from neurofx.config import add_config_arguments
from neurofx.errors import NeurofxError

EXAMPLE_DEALS = "example_deals_ma_cross.csv"


def add_arguments(parser) -> None:
    parser.add_argument("action", nargs="?", choices=["info"], default=None,
                        help="'info': print counts, steps, profits and action statistics of "
                             "the store instead of collecting")
    # flags default to None: a flag not given leaves the [research] config value (config.py)
    parser.add_argument("--store", metavar="DIR", default=None,
                        help="trajectory store directory (research.store; default: "
                             "<runs.root>/trajectories)")
    parser.add_argument("--policy", choices=["random", "neural", "real-orl"], default=None,
                        help="who trades: seeded random actions, the encoder+actor models, or "
                             "actions rebuilt from deal histories (research.policy; default: "
                             "random)")
    parser.add_argument("--passes", type=int, default=None, metavar="N",
                        help="passes to run (random/neural; real-orl runs one per deal file; "
                             "research.passes, default 16)")
    parser.add_argument("--jobs", "-j", type=int, default=None, metavar="J",
                        help="parallel processes (research.jobs; default 0: the CPU count)")
    parser.add_argument("--seed", type=int, default=None,
                        help="run seed; pass i uses a seed derived from (seed, i) "
                             "(research.seed, default 0)")
    parser.add_argument("--start", default=None,
                        help="first bar time of a pass, inclusive (research.start, default "
                             "2023-01-01)")
    parser.add_argument("--end", default=None,
                        help="end of a pass, exclusive (research.end, default 2024-01-01)")
    parser.add_argument("--min-profit", type=float, default=None, metavar="USD",
                        help="keep passes with profit >= this (research.min_profit; default "
                             "auto: 10, real-orl -10000)")
    parser.add_argument("--capacity", type=int, default=None,
                        help="trajectories a NEW store holds (research.capacity, default 500, "
                             "the seed's buffer)")
    parser.add_argument("--deals", nargs="+", metavar="FILE", default=None,
                        help="real-orl: deal histories (MQL5 Signals CSV, MT5 deals export or "
                             "neurofx deals.csv), one pass each (research.deals; default: the "
                             "bundled rule-based example, not a real signal)")
    parser.add_argument("--encoder", default=None, metavar="PATH|NAME",
                        help="neural: encoder model file or registered architecture "
                             "(random weights) (research.encoder, default: tpm; or baseline)")
    parser.add_argument("--actor", default=None, metavar="PATH|NAME",
                        help="neural: actor model file or registered architecture "
                             "(research.actor, default: tpm; or baseline)")
    parser.add_argument("--no-explore", dest="explore", action="store_const", const=False,
                        default=None,
                        help="neural: use the actor's mean action, no VAE sampling "
                             "(research.explore = false)")
    add_config_arguments(parser, "research.passes=32")


FLAGS = {"store": "--store", "policy": "--policy", "passes": "--passes", "jobs": "--jobs",
         "seed": "--seed", "start": "--start", "end": "--end", "min_profit": "--min-profit",
         "capacity": "--capacity", "deals": "--deals", "encoder": "--encoder",
         "actor": "--actor", "explore": "--no-explore"}


def resolve_settings(args) -> dict:
    """The resolved configuration: defaults < --config < --set < the flags given."""
    from neurofx.config import apply_flags, load_config

    cfg = load_config(args.config, args.set)
    apply_flags(cfg, "research", {k: (flag, getattr(args, k)) for k, flag in FLAGS.items()})
    return cfg


def resolve_automatic(r: dict) -> dict:
    """Replace ``min_profit = "auto"`` (the seed's value for the policy) and ``jobs = 0``
    (the CPU count) in the ``[research]`` settings ``r`` by the values a run uses."""
    from neurofx.strategies.research import MIN_PROFIT

    if r["min_profit"] == "auto":
        r["min_profit"] = MIN_PROFIT[r["policy"]]
    if r["jobs"] == 0:
        r["jobs"] = os.cpu_count() or 1
    return r


def _store_path(cfg) -> Path:
    store = cfg["research"]["store"]
    return Path(store) if store else Path(cfg["runs"]["root"]) / "trajectories"


def _broker_config(cfg):
    from neurofx.strategies.broker import BrokerConfig

    b = cfg["broker"]
    return BrokerConfig(
        symbol=cfg["data"]["symbol"], initial_deposit_usd=b["deposit_usd"],
        leverage=b["leverage"], min_spread_points=b["min_spread_points"],
        commission_usd_per_lot_side=b["commission_per_lot_usd"],
        stop_out_level_pct=b["stop_out_pct"])


def _load_bars(cfg):
    from neurofx.data import compute_features, first_valid_row, load_bars

    d = cfg["data"]
    bars = load_bars(d["file"] or None, fmt=d["format"], source_tz=d["source_tz"] or None,
                     tz=d["tz"] or None)
    features = compute_features(bars, tick_volume=d["tick_volume"])
    return bars, features, first_valid_row(features)


def _info(cfg) -> int:
    from neurofx.collectors.store import TrajectoryStore

    store = TrajectoryStore.open(_store_path(cfg))
    print(store.info().to_text())
    return 0


def run(args) -> int:
    from neurofx.config import run_dir, snapshot

    cfg = resolve_settings(args)
    if args.action == "info":
        return _info(cfg)

    from tqdm import tqdm

    from neurofx.collectors.store import TrajectoryStore
    from neurofx.schema import HISTORY_BARS
    from neurofx.strategies import research
    from neurofx.strategies.agent import window_bounds
    from neurofx.strategies.feeds import BarArrays

    r = resolve_automatic(cfg["research"])
    if r["policy"] != "real-orl" and r["deals"]:
        raise NeurofxError("--deals (research.deals) is for --policy real-orl; drop it or add "
                           "--policy real-orl")
    # open the store first: a corrupt or foreign directory stops the run before any work
    store = TrajectoryStore.open(_store_path(cfg), create=True, capacity=r["capacity"])
    broker = _broker_config(cfg)
    bars, features, first_valid = _load_bars(cfg)
    arrays = BarArrays.from_frame(bars)
    lo, hi = window_bounds(arrays.time_s, r["start"], r["end"])
    if lo - HISTORY_BARS < first_valid:
        raise NeurofxError(
            f"--start {r['start']}: the first state needs {HISTORY_BARS} bars with warmed-up "
            f"indicators before it; the data allows a start from bar "
            f"{arrays_time(arrays, first_valid + HISTORY_BARS)} (fix: a later --start)")
    deal_files = list(r["deals"])
    if r["policy"] == "real-orl" and not deal_files:
        deal_files = [str(importlib.resources.files("neurofx.data").joinpath(EXAMPLE_DEALS))]
        print(f"neurofx research: no --deals given; using the bundled {EXAMPLE_DEALS} (made "
              f"by a moving-average crossover rule, NOT a real signal)", file=sys.stderr)
    window = research.window_of(arrays, r["start"], r["end"])
    specs = research.pass_specs(r["policy"], r["passes"], r["seed"], deal_files, window,
                                broker, cfg["data"]["symbol"])
    options = {}
    if r["policy"] == "neural":
        from neurofx.strategies.policies import NeuralPolicy

        options = {"encoder": r["encoder"], "actor": r["actor"], "stochastic": r["explore"]}
        # build once here: bad model files fail before workers start; reused when jobs == 1
        research.cache_neural_policy(options, NeuralPolicy(**options))
    setup = research.ResearchSetup(arrays, features, r["start"], r["end"], broker, r["policy"],
                                   options)
    snapshot(cfg, run_dir(cfg, "research"),
             "neurofx research " + " ".join(shlex.quote(a) for a in sys.argv[2:]))

    summary = research.ResearchSummary()
    bar = tqdm(total=len(specs), unit="pass", desc="research", disable=None, file=sys.stderr)

    def progress(spec, traj, result):
        bar.update(1)
        bar.set_postfix(kept=summary.kept, profit=f"{traj.profit:.0f}")

    try:
        research.collect(setup, specs, store, r["min_profit"], jobs=min(r["jobs"], len(specs)),
                         on_result=progress, summary=summary)
    except KeyboardInterrupt:
        bar.close()
        print(summary.to_text(store), file=sys.stderr)
        raise
    bar.close()
    print(summary.to_text(store))
    return 0


def arrays_time(arrays, index: int) -> str:
    import pandas as pd

    if index >= len(arrays):
        return "(none: the file is too short)"
    return f"{pd.Timestamp(int(arrays.time_s[index]), unit='s'):%Y-%m-%d %H:%M}"
