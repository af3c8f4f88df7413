"""`neurofx research`: collect trajectories with agent passes; `neurofx research info`;
`neurofx research migrate` (a version-1 store to version 2)."""

from __future__ import annotations

import shlex
import sys

from tqdm import tqdm

from neurofx.config import Config, add_config_arguments, load_config
from neurofx.pipeline import research


def add_arguments(parser) -> None:
    parser.add_argument("action", nargs="?", choices=["info", "migrate"], default=None,
                        help="'info': print counts, steps, profits and action statistics of "
                             "the store instead of collecting; 'migrate': rewrite a "
                             "version-1 store as version 2 (one feature matrix, bar indices "
                             "per step) with the bars and feature settings of the config")
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
    parser.add_argument("--group", type=int, default=None, metavar="G",
                        help="passes replayed side by side in one process, one batch policy "
                             "call per bar (research.group, default 16, at most 64); results "
                             "do not depend on it")
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
                        help="real-orl: deal histories (MQL5 Signals CSV, MT5 Trade History "
                             "Report .xlsx/.html, MT5 deals CSV or neurofx deals.csv), one pass "
                             "each (research.deals; default: the bundled rule-based example, "
                             "not a real signal)")
    parser.add_argument("--deals-shift-hours", type=float, default=None, metavar="H",
                        help="real-orl: hours added to the deal times, from the broker's server "
                             "time to the bars' clock (research.deals_shift_hours, default 0)")
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
    parser.add_argument("--executor", choices=["local", "ray"], default=None,
                        help="where passes run: local processes (default) or Ray tasks "
                             "(research.executor; pip install 'neurofx[ray]')")
    parser.add_argument("--address", default=None, metavar="HOST:PORT",
                        help="ray: the cluster to join (research.address; default: start a "
                             "local Ray instance with --jobs CPUs)")
    add_config_arguments(parser, "research.passes=32")


FLAGS = {"store": "--store", "policy": "--policy", "passes": "--passes", "jobs": "--jobs",
         "group": "--group",
         "seed": "--seed", "start": "--start", "end": "--end", "min_profit": "--min-profit",
         "capacity": "--capacity", "deals": "--deals", "encoder": "--encoder",
         "actor": "--actor", "explore": "--no-explore",
         "deals_shift_hours": "--deals-shift-hours", "executor": "--executor",
         "address": "--address"}


def resolve_settings(args) -> Config:
    """The resolved configuration: defaults < --config < --set < the flags given."""
    return load_config(args.config, args.set, {"research": {
        k: (flag, getattr(args, k)) for k, flag in FLAGS.items()}})


class PassBar:
    """The progress bar of a research run (off when stderr is not a terminal)."""

    def __init__(self):
        self.bar = None

    def start(self, passes: int) -> None:
        self.bar = tqdm(total=passes, unit="pass", desc="research", disable=None,
                        file=sys.stderr)

    def update(self, spec, traj, added, summary) -> None:
        self.bar.update(1)
        self.bar.set_postfix(kept=summary.kept, profit=f"{traj.profit:.0f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args) -> int:
    cfg = resolve_settings(args)
    if args.action == "info":
        print(research.store_info(cfg).to_text())
        return 0
    if args.action == "migrate":
        print(research.migrate_store(cfg).to_text())
        return 0
    if research.deal_files(cfg)[1]:
        print(f"neurofx research: no --deals given; using the bundled {research.EXAMPLE_DEALS} "
              f"(made by a moving-average crossover rule, NOT a real signal)", file=sys.stderr)
    bar = PassBar()
    command = "neurofx research " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    try:
        result = research.run_research(cfg, command, on_start=bar.start, on_result=bar.update)
    except research.ResearchInterrupted as exc:
        bar.close()
        print(exc.result.to_text(), file=sys.stderr)
        raise
    bar.close()
    print(result.to_text())
    return 0
