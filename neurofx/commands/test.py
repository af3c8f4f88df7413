"""`neurofx test --run NAME`: replay a test period with the trained agent and write its report.

Writes ``<runs.root>/NAME/test/`` (report.html, metrics.json, trades.csv, deals.csv, ...; see
docs/testing-and-reports.md), prints the key figures and the report's path.
"""

from __future__ import annotations

from neurofx.config import load_config, run_dir, snapshot
from neurofx.errors import NeurofxError

AGENTS = ("neural", "ma-cross")


def add_arguments(parser) -> None:
    parser.add_argument("--run", required=True, metavar="NAME",
                        help="run name: models are read from and the report written to "
                        "<runs.root>/NAME/")
    parser.add_argument("--start", default=None, metavar="YYYY-MM-DD",
                        help="first day of the test period (default 2024-01-01)")
    parser.add_argument("--end", default=None, metavar="YYYY-MM-DD",
                        help="last day of the test period, inclusive (default 2024-01-31)")
    parser.add_argument("--passes", type=int, default=0, metavar="N",
                        help="run N stochastic passes (VAE samples) and report their spread; "
                        "default 0: one deterministic pass with the VAE mean")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="seed of the stochastic passes (default 0; each pass derives its "
                        "own seed from S and its number)")
    parser.add_argument("--stops", choices=("research", "test"), default="research",
                        help="stop-distance rule of the netting: research (as the agent was "
                        "trained; default) or test (the later Test.mq5: spread-adjusted, TP > 2x)")
    parser.add_argument("--agent", choices=AGENTS, default="neural",
                        help="neural: the trained encoder + actor (default); ma-cross: the "
                        "rule-based SMA-crossover demo, no models needed")
    parser.add_argument("--encoder", default=None, metavar="PATH",
                        help="encoder model file (default <runs.root>/NAME/encoder.npz)")
    parser.add_argument("--actor", default=None, metavar="PATH",
                        help="actor model file (default <runs.root>/NAME/actor.npz)")
    parser.add_argument("--config", default=None, metavar="FILE", help="TOML configuration")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. broker.deposit_usd=5000 (repeatable)")


def _check_args(args) -> None:
    if args.seed < 0:
        raise NeurofxError(f"--seed {args.seed}: must be >= 0")
    if args.passes < 0:
        raise NeurofxError(f"--passes {args.passes}: must be >= 0 (0 = one deterministic pass)")
    if args.agent == "ma-cross" and args.passes:
        raise NeurofxError("--passes: the ma-cross agent is deterministic; drop --passes or "
                           "use --agent neural")
    if args.agent == "ma-cross" and (args.encoder or args.actor):
        flag = "--encoder" if args.encoder else "--actor"
        raise NeurofxError(f"{flag}: the ma-cross agent uses no models; drop {flag} or use "
                           "--agent neural")


def run(args) -> int:
    from neurofx.reports.metrics import summary_lines
    from neurofx.strategies import test as tst

    _check_args(args)
    cfg = load_config(args.config, args.set)
    period = tst.parse_period(args.start, args.end)
    loaded = None
    if args.agent == "neural":  # models first: a missing model must not wait for the bars
        paths = tst.model_paths(cfg["runs"]["root"], args.run, args.encoder, args.actor)
        loaded = tst.load_test_policy(paths, args.run, stochastic=args.passes > 0)
    bars = tst.load_config_bars(cfg)
    tst.check_period_in_bars(bars, period)
    broker = tst.broker_config_from(cfg)
    folder = run_dir(cfg, args.run) / "test"
    symbol = cfg["data"]["symbol"]
    extra = {"agent": args.agent, "period": f"{period} (broker clock)",
             "bars file": cfg["data"]["file"] or "bundled EURUSD_H1.csv.gz",
             "deposit": f"{broker.initial_deposit_usd:,.2f} USD",
             "leverage": f"1:{broker.leverage:g}",
             "commission": f"{broker.commission_usd_per_lot_side:g} USD per lot and side",
             "min spread": f"{broker.min_spread_points:g} points"}
    if args.agent == "ma-cross":
        s = tst.ma_cross_settings()
        outcomes = [tst.run_ma_cross_pass(bars, period, broker, **s)]
        extra["strategy"] = (f"SMA({s['fast_bars']}) / SMA({s['slow_bars']}) crossover, "
                             f"{s['lots']} lots, TP {s['tp_frac']} and SL {s['sl_frac']} "
                             "x 1000 points")
        label = "SMA-crossover demo"
    else:
        from neurofx.data import compute_features

        features = compute_features(bars, tick_volume=cfg["data"]["tick_volume"])
        outcomes = tst.run_neural_passes(loaded, bars, features, period, broker, args.passes,
                                         args.seed, args.stops)
        extra.update(loaded.describe())
        extra["mode"] = ("deterministic (VAE mean)" if not args.passes else
                         f"{args.passes} stochastic passes (VAE samples), --seed {args.seed}")
        extra["stops rule"] = args.stops
        label = "neural agent"
    title = f"{args.run}: {label}, {symbol} H1, {period}"
    snapshot(cfg, folder, "test")
    result = tst.write_test_run(folder, outcomes, title, extra)
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
