"""Training throughput of the seed-sized MLP 1080-256-256-216 (tanh), SGD or Adam.

Prints samples/s at batch 1, 32 and 256 for neurofx's OpenCL engine, eager and through
captured execution plans, and, when PyTorch happens to be installed (it is never a
dependency: ``pip install torch`` into the benchmark's environment only), for the same model
in torch in the same run (its default threads, printed), with the neurofx/torch ratios. Each
figure is the median of ``--repeats`` runs.

    python benchmarks/train_mlp.py [--steps 200] [--optimizer sgd|adam] [--repeats 3]
    python benchmarks/train_mlp.py --profile 32 [--optimizer sgd|adam] [--steps 50]

``--profile BATCH`` times nothing against torch: it runs planned steps at that batch on a
profiling queue and prints each kernel's device time per step (summed over its launches, the
optimizer's included), the launch count and the wall time per step (a profiling queue adds a
little to the wall time).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np

from neurofx.nn import Dense, Model, Sequential, get_device
from neurofx.nn.optim import make_optimizer

SIZES = (1080, 256, 256, 216)


def warmed_up(name: str, batch: int, optimizer: str, eager: bool = False):
    """The MLP, its optimizer and a batch of data, after 5 warm-up steps."""
    net = Sequential([Dense(SIZES[0], SIZES[1], "tanh", seed=0),
                      Dense(SIZES[1], SIZES[2], "tanh", seed=1),
                      Dense(SIZES[2], SIZES[3], "none", seed=2)])
    model = Model(net, name=name, eager=eager)
    opt = make_optimizer(optimizer, model.store, lr=1e-3)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, SIZES[0])).astype(np.float32)
    y = rng.normal(size=(batch, SIZES[-1])).astype(np.float32)
    for _ in range(5):
        model.train_step(x, y, opt)
    return model, opt, x, y


def neurofx_rate(batch: int, steps: int, optimizer: str, eager: bool) -> float:
    model, opt, x, y = warmed_up(f"bench{batch}", batch, optimizer, eager)
    dev = get_device()
    dev.finish()
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train_step(x, y, opt)
    dev.finish()
    return batch * steps / (time.perf_counter() - t0)


def profile(batch: int, steps: int, optimizer: str) -> None:
    """Per-kernel device time of planned training steps (see the module docstring)."""
    import pyopencl as cl

    dev = get_device()
    # a profiling queue in place of the device's own, before anything is enqueued
    dev.queue = cl.CommandQueue(dev.context,
                                properties=cl.command_queue_properties.PROFILING_ENABLE)
    events: list = []
    enqueue = cl.enqueue_nd_range_kernel

    def recording(queue, knl, gsize, lsize, *args, **kwargs):
        event = enqueue(queue, knl, gsize, lsize, *args, **kwargs)
        events.append((f"{knl.function_name} {tuple(gsize)}", event))
        return event

    model, opt, x, y = warmed_up(f"profile{batch}", batch, optimizer)
    cl.enqueue_nd_range_kernel = recording  # the plan and the optimizer look it up per call
    per: dict[str, list] = {}
    try:
        dev.finish()
        t0 = time.perf_counter()
        for _ in range(steps):
            events.clear()
            model.train_step(x, y, opt)
            dev.finish()
            for label, event in events:
                row = per.setdefault(label, [0, 0.0])
                row[0] += 1
                row[1] += (event.profile.end - event.profile.start) * 1e-9
        wall = (time.perf_counter() - t0) / steps
    finally:
        cl.enqueue_nd_range_kernel = enqueue
    total = sum(s for _, s in per.values()) / steps
    launches = sum(c for c, _ in per.values()) // steps
    print(f"batch {batch}, {optimizer}: wall {wall * 1e3:.2f} ms per step, kernels "
          f"{total * 1e3:.2f} ms device time, {launches} launches per step")
    print(f"{'ms':>7} {'%':>5} {'count':>5}  kernel (global size)")
    for label, (count, s) in sorted(per.items(), key=lambda kv: -kv[1][1]):
        print(f"{s / steps * 1e3:7.3f} {100 * s / steps / total:5.1f} {count // steps:5d}  "
              f"{label}")


def torch_rate(batch: int, steps: int, optimizer: str) -> float | None:
    """torch's samples/s, measured in a child process: in this one PoCL's worker threads
    compete with torch's OpenMP threads and torch's figures collapse (measured: 10-100x)."""
    out = subprocess.run([sys.executable, __file__, "--torch-only", str(batch), str(steps),
                          optimizer], capture_output=True, text=True, check=False)
    return float(out.stdout) if out.returncode == 0 and out.stdout.strip() else None


def torch_rate_here(batch: int, steps: int, optimizer: str) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(SIZES[0], SIZES[1]), torch.nn.Tanh(),
                              torch.nn.Linear(SIZES[1], SIZES[2]), torch.nn.Tanh(),
                              torch.nn.Linear(SIZES[2], SIZES[3]))
    opt = (torch.optim.SGD(net.parameters(), lr=1e-3) if optimizer == "sgd"
           else torch.optim.Adam(net.parameters(), lr=1e-3))
    x = torch.randn(batch, SIZES[0])
    y = torch.randn(batch, SIZES[-1])
    loss_fn = torch.nn.MSELoss()

    def step():
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(5):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--torch-only":
        rate = torch_rate_here(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        if rate is not None:
            print(rate)
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", type=int, metavar="BATCH",
                    help="per-kernel device times of planned steps at this batch, no torch")
    args = ap.parse_args()
    if args.profile:
        profile(args.profile, args.steps, args.optimizer)
        return
    print(f"device: {get_device().info}")
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__, "
                            "torch.get_num_threads())"], capture_output=True, text=True)
    if probe.returncode == 0:
        version, threads = probe.stdout.split()
        print(f"torch {version}, {threads} threads (default), timed in a child process")
    else:
        print("torch not installed: no ratios")
    sizes = "-".join(map(str, SIZES))
    print(f"MLP {sizes} tanh, {args.optimizer}, {args.steps} steps per batch size, median of "
          f"{args.repeats}")
    print(f"{'batch':>6} {'eager/s':>9} {'planned/s':>10} {'ms/step':>8} {'torch/s':>9} "
          f"{'eager/torch':>12} {'planned/torch':>14}")
    for batch in (1, 32, 256):
        steps = max(args.steps // (1 if batch < 256 else 4), 10)
        rates: dict[str, list[float]] = {"eager": [], "planned": [], "torch": []}
        for _ in range(args.repeats):  # interleaved, so load changes hit all three alike
            rates["eager"].append(neurofx_rate(batch, steps, args.optimizer, True))
            rates["planned"].append(neurofx_rate(batch, steps, args.optimizer, False))
            theirs = torch_rate(batch, steps, args.optimizer)
            if theirs:
                rates["torch"].append(theirs)
        med = {k: float(np.median(v)) if v else None for k, v in rates.items()}
        t = med["torch"]
        cols = (f"{t:9.0f} {med['eager'] / t:12.2f} {med['planned'] / t:14.2f}" if t
                else f"{'-':>9} {'-':>12} {'-':>14}")
        print(f"{batch:>6} {med['eager']:9.0f} {med['planned']:10.0f} "
              f"{1000 * batch / med['planned']:8.2f} {cols}")


if __name__ == "__main__":
    main()
