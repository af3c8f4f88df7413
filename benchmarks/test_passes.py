"""Seconds for ``neurofx test --passes N`` on January 2024 with the seed's full-size TPM encoder
and actor (random weights, stochastic VAE head), eager and planned in the same run.

    .venv/bin/python benchmarks/test_passes.py [--passes 16] [--model tpm] [--start 2024-01-01]
                                               [--end 2024-01-31] [--groups 1,16]

Times only the passes (the models are built and the bars and features loaded once, outside the
timing), as ``neurofx.pipeline.test`` runs them (the first pass computes the encoder's forecasts,
the others share them; ``--group G`` passes side by side, one batch actor forward per bar),
with every model eager (``NEUROFX_EAGER`` semantics: ``model.eager = True``) and with captured
execution plans, for each group size; prints seconds in all, seconds per pass, ms per bar, and
whether every case's deals equal the first's.
The issue's target: <= 15 s for all 16 passes of the full-size TPM agent.
"""

from __future__ import annotations

import argparse
import time
from datetime import date

from neurofx.config import load_config
from neurofx.strategies.backtest import Period, run_neural_passes
from neurofx.strategies.policies import NeuralPolicy, SharedForecasts
from neurofx.strategies.trained_agent import LoadedPolicy


def run(policy: NeuralPolicy, eager: bool, bars, features, period, broker, passes: int,
        group: int):
    for model in (policy.encoder, policy.actor):
        model.eager = eager
        model.invalidate_plans()
    policy.forecasts = SharedForecasts()  # each mode computes its own (shared by its passes)
    loaded = LoadedPolicy(policy, {}, 216)
    t0 = time.perf_counter()
    outcomes = run_neural_passes(loaded, bars, features, period, broker, passes, seed=0,
                                 group=group)
    return time.perf_counter() - t0, outcomes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passes", type=int, default=16)
    ap.add_argument("--model", default="tpm", help="registered agent model (tpm, baseline)")
    ap.add_argument("--start", default="2024-01-01")
    ap.add_argument("--end", default="2024-01-31")
    ap.add_argument("--groups", default="1,16", help="group sizes, comma-separated")
    args = ap.parse_args()
    cfg = load_config()
    bars = cfg.data.load_bars()
    features = cfg.data.features(bars)
    period = Period(date.fromisoformat(args.start), date.fromisoformat(args.end))
    policy = NeuralPolicy(args.model, args.model, stochastic=True)
    policy.check_models("")
    n_bars = int(((bars.index >= period.start_ts) & (bars.index < period.end_exclusive_ts)).sum())
    first = None
    for mode, eager in (("eager", True), ("planned", False)):
        for group in (int(g) for g in args.groups.split(",")):
            seconds, outcomes = run(policy, eager, bars, features, period, cfg.broker,
                                    args.passes, group)
            first = first or outcomes
            same = all(a.replay.deals == b.replay.deals
                       for a, b in zip(first, outcomes, strict=True))
            print(f"{mode:8s} group {group:2d}: {args.passes} passes x {n_bars} bars: "
                  f"{seconds:7.1f} s in all, {seconds / args.passes:6.2f} s per pass, "
                  f"{1000 * seconds / (args.passes * n_bars):6.2f} ms per bar; deals equal "
                  f"to the first case's: {same}", flush=True)


if __name__ == "__main__":
    main()
