"""`neurofx test --run NAME`: replay a test period with the trained agent and write its report.

The step is :mod:`neurofx.pipeline.test`: it writes ``<runs.root>/NAME/test/`` (report.html,
metrics.json, trades.csv, deals.csv, ...; see docs/testing-and-reports.md); this module parses
the arguments and prints the key figures and the report's path.
"""

from __future__ import annotations

from neurofx.config import Config, add_config_arguments, load_config
from neurofx.pipeline import test

AGENTS = ("neural", "ma-cross")


def add_arguments(parser) -> None:
    parser.add_argument("--run", required=True, metavar="NAME",
                        help="run name: models are read from and the report written to "
                        "<runs.root>/NAME/")
    # flags default to None: a flag not given leaves the [test] config value (see config.py)
    parser.add_argument("--start", default=None, metavar="YYYY-MM-DD",
                        help="first day of the test period (test.start, default 2024-01-01)")
    parser.add_argument("--end", default=None, metavar="YYYY-MM-DD",
                        help="last day of the test period, inclusive (test.end, default "
                        "2024-01-31)")
    parser.add_argument("--passes", type=int, default=None, metavar="N",
                        help="run N stochastic passes (VAE samples) and report their spread; "
                        "default 0 (test.passes): one deterministic pass with the VAE mean")
    parser.add_argument("--group", type=int, default=None, metavar="G",
                        help="stochastic passes replayed side by side, one batch actor call "
                             "per bar (test.group, default 16, at most 64); results do not "
                             "depend on it")
    parser.add_argument("--seed", type=int, default=None, metavar="S",
                        help="seed of the stochastic passes (test.seed, default 0; each pass "
                        "derives its own seed from S and its number)")
    parser.add_argument("--stops", choices=("research", "test"), default=None,
                        help="stop-distance rule of the netting: research (as the agent was "
                        "trained; default) or test (the later Test.mq5: spread-adjusted, TP > 2x)"
                        "; test.stops")
    parser.add_argument("--agent", choices=AGENTS, default=None,
                        help="neural: the trained encoder + actor (default); ma-cross: the "
                        "rule-based SMA-crossover demo, no models needed (its settings: "
                        "test.ma_*); test.agent")
    parser.add_argument("--encoder", default=None, metavar="PATH",
                        help="encoder model file (test.encoder; default "
                        "<runs.root>/NAME/encoder.npz)")
    parser.add_argument("--actor", default=None, metavar="PATH",
                        help="actor model file (test.actor; default <runs.root>/NAME/actor.npz)")
    parser.add_argument("--no-baselines", dest="baselines", action="store_const", const=False,
                        default=None, help="do not replay the baselines (flat, buy-and-hold, "
                        "ma-cross, random) beside the agent (test.baselines=false)")
    parser.add_argument("--random-passes", type=int, default=None, metavar="K",
                        help="passes of the random baseline (test.random_passes, default 32)")
    parser.add_argument("--walk-forward", default=None, metavar="START..END",
                        help="also test each month of START..END (YYYY-MM) on its own and "
                        "write walk_forward.csv; the whole range is the report's period "
                        "(test.walk_forward)")
    parser.add_argument("--data", default=None, metavar="FILE",
                        help="bar file to test on (data.file; default the bundled EURUSD H1)")
    add_config_arguments(parser, "test.passes=8")


FLAGS = {"start": "--start", "end": "--end", "passes": "--passes", "group": "--group",
         "seed": "--seed",
         "stops": "--stops", "agent": "--agent", "encoder": "--encoder", "actor": "--actor",
         "baselines": "--no-baselines", "random_passes": "--random-passes",
         "walk_forward": "--walk-forward"}


def resolve_settings(args) -> Config:
    """The resolved configuration: defaults < --config < --set < the flags given."""
    return load_config(args.config, args.set, {
        "test": {key: (flag, getattr(args, key)) for key, flag in FLAGS.items()},
        "data": {"file": ("--data", args.data)}})


def run(args) -> int:
    for line in test.run_test(resolve_settings(args), args.run).lines():
        print(line)
    return 0
