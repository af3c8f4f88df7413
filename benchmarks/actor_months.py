"""A run's actor used deterministically (its VAE mean), month by month, against chance.

    .venv/bin/python benchmarks/actor_months.py [--run quickstart] [--months 2023-07..2024-01]
                                                [--random-passes 32] [--seed 0]
                                                [--runs-root runs]

Runs ``neurofx test --run RUN --walk-forward MONTHS`` (``neurofx.pipeline.test.run_test``:
one deterministic pass per month, beside the random policy matched to the agent's trade count,
volume, TP and SL over K seeded passes) and prints per month: trades, net profit, the random
passes' median and range, the agent's percentile among them and whether it beat the median.
The month 2024-01 is the same replay as ``neurofx test --run RUN`` (January 2024, the same
broker, seed and random passes). Months that overlap the bars the run was trained on (its
store's passes: the quickstart's research replays 2023) are marked in-sample: they flatter the
agent.

First it prints the actor's mean action on January 2024 (``--probe-month``): the actor's
outputs in its coding's units (``raw``: buy lots, buy TP, buy SL, sell lots, sell TP, sell SL;
``signed``: net lots, buy TP, buy SL, volume lots, sell TP, sell SL; docs/actions.md) averaged
over the bars, their min and max, and on how many bars the decoded action nets to at least
the minimum lot on each side.

The run's own report (``RUN/test/``) is left alone: the walk-forward is written into the
scratch run ``RUN-months`` (the run's model files are read where they are; its two
``study_*_config.json`` files are copied there so the pipeline finds the training period).
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from neurofx.agents.actions import coding_of
from neurofx.config import load_config
from neurofx.errors import NeurofxError
from neurofx.nn import Model
from neurofx.pipeline.test import run_test
from neurofx.strategies.agent import run_agent_pass
from neurofx.strategies.policies import NeuralPolicy

SAMPLE = {True: "in-sample", False: "out-of-sample", None: "unknown"}


def _num(x: float, spec: str) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def probe(cfg, folder: Path, month: str) -> None:
    """The actor's mean outputs over the bars of ``month`` (one deterministic pass)."""
    bars = cfg.data.load_bars()
    features = cfg.data.features(bars)
    policy = NeuralPolicy(folder / "encoder.npz", folder / "actor.npz", stochastic=False)
    outputs, predict = [], policy.actor.predict

    def record(*args):
        out = predict(*args)
        outputs.append(out.reshape(-1).copy())
        return out

    policy.actor.predict = record
    start = pd.Timestamp(f"{month}-01")
    res = run_agent_pass(bars, features, policy, start, start + pd.offsets.MonthBegin(1),
                         cfg.broker)
    y = np.array(outputs)
    units, actions = policy.coding.units(y), policy.coding.decode(y)
    names = (["buy lots", "buy TP", "buy SL", "sell lots", "sell TP", "sell SL"]
             if policy.coding.is_raw else
             ["net lots", "buy TP", "buy SL", "volume lots", "sell TP", "sell SL"])
    net = actions[:, 0] - actions[:, 3]
    lot = cfg.broker.min_lot
    print(f"mean action on {month} ({len(y)} bars, coding {policy.coding.kind}):")
    for k, name in enumerate(names):
        print(f"  {name:12s} mean {units[:, k].mean():+.4f}  min {units[:, k].min():+.4f}  "
              f"max {units[:, k].max():+.4f}")
    print(f"  netted: buy >= {lot:g} lots on {int((net >= lot).sum())} bars, sell on "
          f"{int((net <= -lot).sum())}; {sum(d.entry == 'in' for d in res.replay.deals)} "
          f"orders opened")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="quickstart", help="run whose models to test")
    ap.add_argument("--months", default="2023-07..2024-01", help="YYYY-MM..YYYY-MM")
    ap.add_argument("--random-passes", type=int, default=32, help="random baseline passes")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random baseline")
    ap.add_argument("--runs-root", default="runs")
    ap.add_argument("--probe-month", default="2024-01",
                    help="month whose mean actions are printed first (YYYY-MM)")
    args = ap.parse_args()
    root, folder = Path(args.runs_root), Path(args.runs_root) / args.run
    scratch = f"{args.run}-months"
    try:
        actor = Model.load(folder / "actor.npz", name="actor")
    except (OSError, NeurofxError) as exc:
        print(f"{folder / 'actor.npz'}: cannot read the run's actor ({exc}); run 'neurofx "
              f"quickstart --run {args.run}' first", file=sys.stderr)
        return 2
    (root / scratch).mkdir(parents=True, exist_ok=True)
    for stage in ("encoder", "actor"):
        src = folder / f"study_{stage}_config.json"
        if src.is_file():
            shutil.copyfile(src, root / scratch / src.name)
    cfg = load_config(None, [f"runs.root={str(root)!r}"], {"test": {
        "walk_forward": ("--walk-forward", args.months), "passes": ("--passes", 0),
        "random_passes": ("--random-passes", args.random_passes),
        "seed": ("--seed", args.seed),
        "encoder": ("--encoder", str(folder / "encoder.npz")),
        "actor": ("--actor", str(folder / "actor.npz"))}})
    probe(cfg, folder, args.probe_month)
    t0 = time.perf_counter()
    months = run_test(cfg, scratch).report.walk_forward
    wall = time.perf_counter() - t0
    print(f"run {args.run}: actor coding {coding_of(actor).kind}, deterministic (VAE mean); "
          f"random baseline {args.random_passes} passes, seed {args.seed}; {wall:.0f} s")
    head = (f"{'month':8s} {'sample':13s} {'trades':>6s} {'net USD':>9s} {'random median':>13s}"
            f" {'random min..max':>19s} {'pct':>4s}  beat median")
    print(head)
    print("-" * len(head))
    for m in months:
        v = m.values
        net, med = v["agent_net_profit_usd"], v["random_net_profit_usd"]
        beat = "n/a" if math.isnan(med) else ("yes" if net > med else "no")
        span = (f"{_num(v['random_net_profit_min_usd'], '+.0f')}.."
                f"{_num(v['random_net_profit_max_usd'], '+.0f')}")
        print(f"{m.month:8s} {SAMPLE[m.in_sample]:13s} {v['agent_trades']:6.0f} {net:+9.2f} "
              f"{_num(med, '+13.2f'):>13s} {span:>19s} {_num(v['agent_percentile'], '4.0f'):>4s}"
              f"  {beat}")
    beaten = [m for m in months if m.values["agent_net_profit_usd"]
              > m.values["random_net_profit_usd"]]
    out = [m for m in months if m.in_sample is False]
    print(f"beat the random median in {len(beaten)} of {len(months)} months "
          f"({sum(m in beaten for m in out)} of {len(out)} out-of-sample)")
    print(f"report: {root / scratch / 'test' / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
