"""Per-kernel device-time profile of a captured plan: where a model's step spends its time.

    .venv/bin/python benchmarks/profile_plan.py [--what train|predict] [--seq 100] [--batch 8]
        [--hidden 256] [--bars 120] [--top 25] [--replays 2]

Builds the TPM encoder (seed sizes by default), records one ``train_step`` plan (sequence mode,
``--seq`` steps x ``--batch``, full BPTT, FreDF, Adam) or a batch-``--batch`` stateful
``predict`` plan, then replays it ``--replays`` times on a profiling queue, collecting each
command's OpenCL event (``Plan.replay(..., events=)``). It prints the wall time of one
replay, the summed device time of its commands (the optimizer step's own kernels are not
listed), the launch count, and the top entries by device time grouped by kernel and global
size (GEMMs of one shape fall in one row) with their count per replay, then the totals per
kernel. The last replay is reported (the first warms caches).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
import pyopencl as cl

from neurofx import agents
from neurofx.agents.tpm import LOSSES
from neurofx.nn.device import get_device
from neurofx.nn.optim import make_optimizer


def profiled_replay(plan, args) -> tuple[float, list]:
    """Replay ``plan`` once on the device's (profiling) queue; return the wall seconds (from
    the upload of ``args`` to the result on the host) and (label, seconds) per command."""
    plan.device.finish()
    events: list = []
    t0 = time.perf_counter()
    plan.replay(args, events=events)
    wall = time.perf_counter() - t0
    return wall, [(label, (e.profile.end - e.profile.start) * 1e-9) for label, e in events]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--what", choices=("train", "predict"), default="train")
    ap.add_argument("--seq", type=int, default=100)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--bars", type=int, default=120)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--replays", type=int, default=2)
    args = ap.parse_args()
    dev = get_device()
    # a profiling queue in place of the device's own, before anything is enqueued
    dev.queue = cl.CommandQueue(dev.context,
                                properties=cl.command_queue_properties.PROFILING_ENABLE)
    rng = np.random.default_rng(0)
    n_in = args.bars * 9
    enc = agents.build("encoder", "tpm", bars=args.bars, hidden=args.hidden,
                       model_name="encoder_profile")
    if args.what == "train":
        x = rng.normal(size=(args.seq, args.batch, n_in)).astype(np.float32)
        y = rng.normal(size=(args.seq, args.batch, 216)).astype(np.float32)
        enc.loss_fn = LOSSES["encoder:tpm"]
        opt = make_optimizer("adam", enc.store, lr=3e-4)
        enc.train_step(x, y, opt)  # records the plan
        call = enc._train_calls[(id(opt), 1)][0]
        inputs = (x, y)
    else:
        x = rng.normal(size=(args.batch, n_in)).astype(np.float32)
        enc.predict(x)
        enc.predict(x)
        call = enc._predict_call
        inputs = (x,)
    plan = next(iter(call.plans.values()))
    for _ in range(args.replays):
        wall, rows = profiled_replay(plan, inputs)
    total = sum(s for _, s in rows)
    by = defaultdict(lambda: [0, 0.0])
    for label, s in rows:
        by[label][0] += 1
        by[label][1] += s
    print(f"{args.what}: {plan.launches} launches, {len(rows)} commands, replay wall "
          f"{wall * 1e3:.1f} ms, device time {total * 1e3:.1f} ms")
    print(f"{'ms':>8s} {'%':>5s} {'count':>6s}  kernel (global size)")
    for label, (count, s) in sorted(by.items(), key=lambda kv: -kv[1][1])[:args.top]:
        print(f"{s * 1e3:8.2f} {100 * s / total:5.1f} {count:6d}  {label}")
    by_name = defaultdict(float)
    for label, s in rows:
        by_name[label.split(" ")[0]] += s
    print("\nby kernel: " + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in
                                       sorted(by_name.items(), key=lambda kv: -kv[1])[:12]))


if __name__ == "__main__":
    main()
