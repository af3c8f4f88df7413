"""Optimizer state memory and update speed for the seed's MLP (1080-256-256-216).

    .venv/bin/python benchmarks/optimizers.py [--steps 200] [--repeats 5] [--variants]

For each optimizer: state bytes, state floats per parameter, ratio to Adam, mean update time
per step (``steps`` enqueued back to back, one ``finish``; the best of ``repeats`` rounds that
time every optimizer and the copy in turn) and the
effective bandwidth (the bytes the rule must read and write per step / time), next to a plain
device copy (``enqueue_copy`` buffer -> buffer) moving as many bytes. Weights are (out, in) with
one Adam-mini block per row; biases keep full Adam (block 1). Targets (issue 4): Adam-mini
state <= 0.51 x Adam's, Adam >= 50 % of the copy bandwidth, Adam-mini no slower than Adam.
``--variants`` also times Adam-mini's kernel choices (speed knobs of AdamMini). Timings on a
shared CPU are noisy: compare rows of one run, not across runs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyopencl as cl

from neurofx.nn.device import get_device
from neurofx.nn.optim import OPTIMIZERS, make_optimizer
from neurofx.nn.parameters import ParameterStore

LAYERS = (1080, 256, 256, 216)
# floats read + written per element per step by each rule (w, g and its state)
TRAFFIC = {"sgd": 3, "momentum": 5, "nesterov": 5, "rprop": 7, "adagrad": 5, "rmsprop": 5,
           "adam": 7, "adamw": 7, "nadam": 7, "adadelta": 7}


def mlp_store(dev, owner):
    rng = np.random.default_rng(0)
    entries = []
    for i, (n_in, n_out) in enumerate(zip(LAYERS[:-1], LAYERS[1:], strict=True)):
        k = 1.0 / np.sqrt(n_in)
        entries.append((f"fc{i}.weight", rng.uniform(-k, k, (n_out, n_in)), "weight", n_in))
        entries.append((f"fc{i}.bias", np.zeros(n_out), "bias", 1))
    store = ParameterStore(entries, owner=owner, device=dev)
    grads = (1e-3 * rng.standard_normal(store.size)).astype(np.float32)
    pad = np.ones(store.size, bool)
    for s in store.specs:
        pad[s.offset:s.offset + s.numel] = False
    grads[pad] = 0.0
    cl.enqueue_copy(dev.queue, store.grad_buf, grads, is_blocking=True)
    return store


def time_steps(dev, fn, steps, repeats):
    fn()
    dev.finish()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        dev.finish()
        best = min(best, (time.perf_counter() - t0) / steps)
    return best


def step_bytes(name, store, opt):
    if name == "adam-mini":  # w, g, m read; w, m written; v per block read + written
        return 4 * (5 * store.numel + 2 * opt.n_blocks)
    return 4 * TRAFFIC[name] * store.size


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--variants", action="store_true")
    ap.add_argument("--models", action="store_true",
                    help="also: Adam vs Adam-mini state of the agent's encoder, actor and critic")
    args = ap.parse_args(argv)
    dev = get_device()
    n = mlp_store(dev, "bench.probe").numel
    print(f"device: {dev.info}\nMLP {'-'.join(map(str, LAYERS))}: {n} parameters, "
          f"{args.steps} steps x best of {args.repeats}\n")

    opts = {name: make_optimizer(name, mlp_store(dev, f"bench.{name}")) for name in OPTIMIZERS}
    # a plain device copy moving as many bytes as Adam's step (half read, half written)
    adam_traffic = step_bytes("adam", opts["adam"].store, opts["adam"])
    half = adam_traffic // 2
    src, dst = dev.alloc(half, "other", "bench"), dev.alloc(half, "other", "bench")
    cl.enqueue_fill_buffer(dev.queue, src, np.float32(1), 0, half)
    jobs = {name: opt.step for name, opt in opts.items()}
    jobs["copy"] = lambda: cl.enqueue_copy(dev.queue, dst, src, byte_count=half)
    # round robin, best of `repeats` each: load changes from other processes hit all alike
    best = dict.fromkeys(jobs, float("inf"))
    for _ in range(args.repeats):
        for name, fn in jobs.items():
            best[name] = min(best[name], time_steps(dev, fn, args.steps, 1))
    t_copy = best["copy"]
    copy_gbs = adam_traffic / t_copy / 1e9
    adam_bytes = opts["adam"].state_bytes()
    rows = [(name, opt.state_bytes(), best[name], step_bytes(name, opt.store, opt))
            for name, opt in opts.items()]

    print(f"{'optimizer':<10} {'state bytes':>12} {'floats/param':>12} {'x Adam':>7} "
          f"{'us/step':>9} {'GB/s':>7} {'% copy':>7}")
    for name, sb, t, nbytes in rows:
        gbs = nbytes / t / 1e9
        print(f"{name:<10} {sb:>12,} {sb / 4 / n:>12.3f} {sb / adam_bytes:>7.3f} "
              f"{t * 1e6:>9.1f} {gbs:>7.2f} {100 * gbs / copy_gbs:>6.0f}%")
    print(f"{'copy':<10} {'':>12} {'':>12} {'':>7} {t_copy * 1e6:>9.1f} {copy_gbs:>7.2f} "
          f"{100:>6}%   ({half:,} bytes buffer -> buffer)")

    t_adam = next(r[2] for r in rows if r[0] == "adam")
    mini = next(r for r in rows if r[0] == "adam-mini")
    print(f"\nAdam-mini state / Adam state = {mini[1] / adam_bytes:.3f} (target <= 0.51)")
    print(f"Adam bandwidth / copy = {adam_traffic / t_adam / 1e9 / copy_gbs:.2f} "
          "(target >= 0.50)")
    print(f"Adam-mini step / Adam step = {mini[2] / t_adam:.2f} (target <= 1.00)")

    if args.variants:
        print("\nAdam-mini variants (serial: one work-item per block; rows: a work-group walks "
              "consecutive long blocks)")
        for gmb, wg, epg in ((1 << 30, 1, 1), (1 << 30, 2, 1), (1 << 30, 8, 1), (1 << 30, 64, 1),
                             (64, 16, 1), (64, 16, 16384), (64, 64, 16384)):
            store = mlp_store(dev, "bench.variant")
            opt = make_optimizer("adam-mini", store, group_min_block=gmb, work_group=wg,
                                 elems_per_group=epg)
            t = time_steps(dev, opt.step, args.steps, args.repeats)
            label = "serial" if gmb >= 1 << 30 else f"rows B>={gmb}, {epg} elems/group"
            print(f"  {label:<28} work_group {wg:>3}: {t * 1e6:8.1f} us/step "
                  f"({t / t_adam:.2f} x Adam)")

    if args.models:
        model_state_memory()


def model_state_memory() -> None:
    """Optimizer state bytes as allocated after a first step, per agent model."""
    from neurofx import agents

    print("\nagent models: optimizer state after the first step (bytes, device ledger)")
    print(f"{'model':<18} {'params':>10} {'adam':>12} {'adam-mini':>12} {'ratio':>7}")
    for arch in ("baseline", "tpm"):
        for role in ("encoder", "actor", "critic"):
            sizes = {}
            for name in ("adam", "adam-mini"):
                model = agents.build(role, arch, model_name=f"mem.{arch}.{role}.{name}")
                opt = make_optimizer(name, model.store, lr=1e-4)
                opt.step()  # state is allocated lazily on the first step
                sizes[name] = get_device().memory.total("optimizer", model.name)
            print(f"{arch + ' ' + role:<18} {model.num_parameters:>10,} {sizes['adam']:>12,} "
                  f"{sizes['adam-mini']:>12,} {sizes['adam-mini'] / sizes['adam']:>7.3f}")


if __name__ == "__main__":
    main()
