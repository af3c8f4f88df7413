"""Seconds per research pass over 2023 with the random and the neural policy, against the
backtrader no-op replay of the same bars in the same run.

    .venv/bin/python benchmarks/research.py [--repeat N] [--neural-repeat N] [--skip-neural]
                                            [--parallel J]
                                            [--tpm-passes N [--groups 1,16] [--jobs J]
                                             [--modes planned[,eager]]]

Prints, per case, wall seconds per pass (best of the repeats), bars/s and the ratio to the
no-op ``bt.Strategy`` replay (NumpyFeed) of the same bars. The neural policy is the registered
``baseline`` encoder + actor (random weights; stochastic VAE head) on the OpenCL device in use.
``--parallel J`` also times ``collect`` with J processes over 2*J random passes (passes/s,
including process start-up). ``--tpm-passes N`` times N neural research passes over 2023 with
the seed's full-size TPM encoder and actor (random weights, exploring), as ``neurofx research
--policy neural --passes N --group G --jobs J`` runs them (``research.iter_passes``: shared
forecasts, groups of G passes side by side, J processes, process start-up included, store
writes excluded), for each group size and mode, and checks that every case gives the same
trajectories. The issue's target: <= 120 s for 16 passes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import backtrader as bt
import numpy as np

from neurofx.collectors.store import TrajectoryStore
from neurofx.data import compute_features, load_bars
from neurofx.data.features import FeatureMatrix
from neurofx.nn import plan
from neurofx.strategies import research
from neurofx.strategies.agent import run_agent_pass
from neurofx.strategies.broker import BrokerConfig
from neurofx.strategies.feeds import BarArrays, make_feed
from neurofx.strategies.policies import NeuralPolicy, RandomPolicy, pass_seed
from neurofx.strategies.replay import ReplayStrategy, run_replay

START, END = "2023-01-01", "2024-01-01"


class NoOp(bt.Strategy):
    def next(self):
        pass


def noop_replay(bars: BarArrays) -> None:
    cerebro = bt.Cerebro(stdstats=False, cheat_on_open=True)
    cerebro.adddata(make_feed(bars, "numpy"))
    cerebro.addstrategy(NoOp)
    cerebro.run()


def best(fn, repeat: int) -> float:
    out = float("inf")
    for i in range(repeat):
        t0 = time.perf_counter()
        fn(i)
        out = min(out, time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs of the fast cases (best kept)")
    ap.add_argument("--neural-repeat", type=int, default=1, help="neural passes (best kept)")
    ap.add_argument("--skip-neural", action="store_true")
    ap.add_argument("--parallel", type=int, default=0, metavar="J",
                    help="also time collect() with J processes over 2*J random passes")
    ap.add_argument("--tpm-passes", type=int, default=0, metavar="N",
                    help="also time N neural passes of the full-size TPM agent")
    ap.add_argument("--groups", default="1,16", help="group sizes of --tpm-passes")
    ap.add_argument("--jobs", type=int, default=1, help="processes of --tpm-passes")
    ap.add_argument("--modes", default="planned",
                    help="planned and/or eager (NEUROFX_EAGER=1), comma-separated")
    args = ap.parse_args()

    t0 = time.perf_counter()
    frame = load_bars()
    t1 = time.perf_counter()
    feats = compute_features(frame)
    t2 = time.perf_counter()
    bars = BarArrays.from_frame(frame)
    window = research.window_of(bars, START, END)
    n = len(window)
    print(f"bars {len(bars)} in the file, {n} in {START}..{END}; load {t1 - t0:.2f} s, "
          f"features {t2 - t1:.2f} s (once per run)")

    rows = []
    noop = best(lambda i: noop_replay(window), args.repeat)
    rows.append(("no-op bt.Strategy replay", noop))
    rows.append(("ReplayStrategy (broker cycle)",
                 best(lambda i: run_replay(window, ReplayStrategy), args.repeat)))
    rows.append(("agent pass, random policy",
                 best(lambda i: run_agent_pass(bars, feats, RandomPolicy(), START, END,
                                               seed=pass_seed(0, i)), args.repeat)))
    if not args.skip_neural:
        policy = NeuralPolicy("baseline", "baseline", stochastic=True)
        policy.act(0, feats[:120].reshape(-1) * 0, [0.0] * 12)  # build the kernels first
        rows.append(("agent pass, neural policy",
                     best(lambda i: run_agent_pass(bars, feats, policy, START, END,
                                                   seed=pass_seed(0, i)), args.neural_repeat)))
    print(f"{'case':32s} {'s/pass':>8s} {'bars/s':>10s} {'x no-op':>8s}")
    for name, sec in rows:
        print(f"{name:32s} {sec:8.3f} {n / sec:10,.0f} {sec / noop:8.1f}")

    if args.tpm_passes:
        tpm_passes(bars, feats, args)

    if args.parallel:
        setup = research.ResearchSetup(bars, feats, START, END, BrokerConfig(),
                                       "random")
        specs = research.pass_specs("random", 2 * args.parallel, 0)
        with tempfile.TemporaryDirectory() as tmp:
            store = TrajectoryStore.open(os.path.join(tmp, "s"), create=True)
            t0 = time.perf_counter()
            research.collect(setup, specs, store, -1e9, jobs=args.parallel)
            sec = time.perf_counter() - t0
        print(f"collect, {args.parallel} processes: {len(specs)} random passes in {sec:.1f} s "
              f"= {len(specs) / sec:.2f} passes/s (with start-up and store writes)")


def tpm_passes(bars: BarArrays, feats, args) -> None:
    matrix = FeatureMatrix.from_features(feats)
    specs = research.pass_specs("neural", args.tpm_passes, 0)
    options = {"encoder": "tpm", "actor": "tpm", "stochastic": True}
    first = None
    print(f"{args.tpm_passes} neural passes, full-size TPM, --jobs {args.jobs}:")
    for mode in args.modes.split(","):
        os.environ[plan.EAGER_ENV] = "1" if mode == "eager" else "0"
        research._WORKER.clear()
        if args.jobs <= 1:  # build (and compile) the models outside the timing
            research.cache_neural_policy(options, NeuralPolicy(**options))
        for group in (int(g) for g in args.groups.split(",")):
            setup = research.ResearchSetup(bars, matrix, START, END, BrokerConfig(), "neural",
                                           options, "tpm,tpm", group)
            t0 = time.perf_counter()
            trajs = [t for _, t in research.iter_passes(setup, specs, args.jobs)]
            sec = time.perf_counter() - t0
            if first is None:
                first = trajs
            same = all(np.array_equal(a.actions, b.actions) and np.array_equal(a.accounts,
                                                                                b.accounts)
                       and np.array_equal(a.rewards, b.rewards)
                       for a, b in zip(first, trajs, strict=True))
            print(f"  {mode:8s} group {group:3d}: {sec:7.1f} s in all, "
                  f"{sec / len(specs):6.2f} s per pass; same trajectories as the first case: "
                  f"{same}", flush=True)
    os.environ.pop(plan.EAGER_ENV, None)


if __name__ == "__main__":
    main()
