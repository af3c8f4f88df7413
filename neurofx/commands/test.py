"""`neurofx test --run NAME`: replay a test period with the trained agent and write its report.

Writes ``<runs.root>/NAME/test/`` (report.html, metrics.json, trades.csv, deals.csv, ...; see
docs/testing-and-reports.md), prints the key figures and the report's path.
"""

from __future__ import annotations

from neurofx.config import (
    add_config_arguments,
    apply_flags,
    load_config,
    run_dir,
    snapshot,
)
from neurofx.errors import NeurofxError

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
    add_config_arguments(parser, "test.passes=8")


FLAGS = {"start": "--start", "end": "--end", "passes": "--passes", "seed": "--seed",
         "stops": "--stops", "agent": "--agent", "encoder": "--encoder", "actor": "--actor"}


def resolve_settings(args) -> dict:
    """The resolved configuration: defaults < --config < --set < the flags given."""
    cfg = load_config(args.config, args.set)
    apply_flags(cfg, "test", {key: (flag, getattr(args, key)) for key, flag in FLAGS.items()})
    _check_settings(cfg["test"])
    return cfg


def _check_settings(t: dict) -> None:
    if t["agent"] == "ma-cross" and t["passes"]:
        raise NeurofxError("--passes: the ma-cross agent is deterministic; drop --passes "
                           "(test.passes) or use --agent neural")
    if t["agent"] == "ma-cross" and (t["encoder"] or t["actor"]):
        flag = "--encoder" if t["encoder"] else "--actor"
        raise NeurofxError(f"{flag}: the ma-cross agent uses no models; drop {flag} "
                           f"(test.{flag[2:]}) or use --agent neural")


def run(args) -> int:
    from neurofx.reports.metrics import summary_lines
    from neurofx.strategies import test as tst

    cfg = resolve_settings(args)
    t = cfg["test"]
    period = tst.parse_period(t["start"], t["end"])
    loaded = None
    if t["agent"] == "neural":  # models first: a missing model must not wait for the bars
        paths = tst.model_paths(cfg["runs"]["root"], args.run, t["encoder"] or None,
                                t["actor"] or None)
        loaded = tst.load_test_policy(paths, args.run, stochastic=t["passes"] > 0)
    bars = tst.load_config_bars(cfg)
    tst.check_period_in_bars(bars, period)
    clock = tst.bars_clock(bars, cfg["data"]["tz"])
    broker = tst.broker_config_from(cfg)
    folder = run_dir(cfg, args.run) / "test"
    symbol = cfg["data"]["symbol"]
    extra = {"agent": t["agent"], "period": f"{period} ({clock})",
             "bars file": cfg["data"]["file"] or "bundled EURUSD_H1.csv.gz",
             "deposit": f"{broker.initial_deposit_usd:,.2f} USD",
             "leverage": f"1:{broker.leverage:g}",
             "commission": f"{broker.commission_usd_per_lot_side:g} USD per lot and side",
             "min spread": f"{broker.min_spread_points:g} points"}
    if t["agent"] == "ma-cross":
        s = tst.ma_cross_settings(**{k[3:]: v for k, v in t.items() if k.startswith("ma_")})
        outcomes = [tst.run_ma_cross_pass(bars, period, broker, **s)]
        extra["strategy"] = (f"SMA({s['fast_bars']}) / SMA({s['slow_bars']}) crossover, "
                             f"{s['lots']} lots, TP {s['tp_frac']} and SL {s['sl_frac']} "
                             "x 1000 points")
        label = "SMA-crossover demo"
    else:
        from neurofx.data import compute_features

        features = compute_features(bars, tick_volume=cfg["data"]["tick_volume"])
        outcomes = tst.run_neural_passes(loaded, bars, features, period, broker, t["passes"],
                                         t["seed"], t["stops"])
        extra.update(loaded.describe())
        extra["mode"] = ("deterministic (VAE mean)" if not t["passes"] else
                         f"{t['passes']} stochastic passes (VAE samples), seed {t['seed']}")
        extra["stops rule"] = t["stops"]
        label = "neural agent"
    title = f"{args.run}: {label}, {symbol} H1, {period}"
    snapshot(cfg, folder, "test")
    result = tst.write_test_run(folder, outcomes, title, extra, clock)
    print(title)
    if result.spread is not None:
        k = result.spread.median_pass
        print(f"report of pass {k + 1} of {len(outcomes)} (median net profit, seed "
              f"{outcomes[k].seed}); all passes below")
    for line in summary_lines(result.metrics):
        print(line)
    if result.spread is not None:
        for line in result.spread.lines():
            print(line)
        print(f"passes compared: {result.comparison_path}")
    print(f"report: {result.report_path}")
    return 0
