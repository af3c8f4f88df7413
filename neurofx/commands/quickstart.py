"""`neurofx quickstart`: the whole pipeline on the bundled data with small settings.

research (random policy, a few passes of 2023) -> study encoder -> study actor -> test
(January 2024) -> report. Each step is an ordinary neurofx command, printed before it runs,
so the user can re-run or tune any step by hand (see the README's walkthrough).
"""

from __future__ import annotations

import shlex
import time

# (passes, encoder iterations, actor iterations): a few minutes on a 2-core laptop CPU
SIZES = {"small": (16, 150, 150), "tiny": (8, 20, 20)}


def add_arguments(parser):
    parser.add_argument("--run", default="quickstart", help="run name (default quickstart)")
    parser.add_argument("--size", choices=sorted(SIZES), default="small",
                        help="small: the README's demo; tiny: a smoke test")
    parser.add_argument("--optimizer", default="adam-mini",
                        help="optimizer for study (default adam-mini)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=None, help="research processes")
    parser.add_argument("--config", help="TOML config passed to every step")


def steps(args) -> list[list[str]]:
    passes, enc_iters, act_iters = SIZES[args.size]
    store = f"runs/{args.run}/trajectories"
    common = ["--config", args.config] if args.config else []
    # keep every pass: the encoder learns from all bars; the actor clones the profitable ones
    research = ["research", "--passes", str(passes), "--seed", str(args.seed), "--store", store,
                "--min-profit=-1e9"]
    if args.jobs:
        research += ["--jobs", str(args.jobs)]
    study = ["--store", store, "--run", args.run, "--optimizer", args.optimizer,
             "--seed", str(args.seed), "--seq-len", "50", "--no-progress", "--fresh"]
    return [
        research + common,
        ["study", "encoder", "--iterations", str(enc_iters), *study, *common],
        ["study", "actor", "--iterations", str(act_iters), *study, *common],
        ["test", "--run", args.run, *common],
    ]


def run(args):
    from neurofx.cli import main

    t0 = time.perf_counter()
    for argv in steps(args):
        print(f"\n$ neurofx {shlex.join(argv)}", flush=True)
        rc = main(argv)
        if rc:
            return rc
    print(f"\nquickstart done in {time.perf_counter() - t0:.0f} s; open "
          f"runs/{args.run}/test/report.html (or: neurofx report runs/{args.run}/test --open)")
    return 0
