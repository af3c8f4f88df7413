"""Trajectory store version 2 against version 1 (issue 13): disk bytes, peak resident memory of
`neurofx study actor` on 500 full-year passes, memory growth per stored pass, and the sampler's
windows/s against a version-1 store, in one run.

    .venv/bin/python benchmarks/store.py [--real 4] [--passes 500] [--small 100]
                                         [--iterations 10] [--keep DIR]

What it does (all under a temporary folder, or ``--keep DIR``):

1. ``neurofx research`` runs ``--real`` random-policy passes over 2023 (full year, bundled bars)
   into a version-2 store;
2. SYNTHETIC stores of ``--small`` and ``--passes`` passes are made by copying the per-step
   records (bar indices, accounts, actions, rewards) of those real passes with other seeds,
   instead of running hundreds of full passes: the study reads the same amount of data per
   pass either way (every other copy has its balance reward mirrored: random passes lose, and
   the actor needs profitable passes to clone). A 16-pass version-1 store holds the same
   passes with their states;
3. ``neurofx study encoder`` (few iterations, on the 16-pass store) makes an encoder, then
   ``neurofx study actor`` runs in a fresh process on each store; its peak resident memory
   (``ru_maxrss``) is printed, and the growth per pass between the small and the large store;
4. the sampler alone (no model): windows/s of ``WindowSampler.batch`` + gathering the batch's
   states (``gather_sequence``), on the 16-pass stores of version 1 and 2.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from neurofx.cli import main as cli_main
from neurofx.collectors.store import TrajectoryStore
from neurofx.collectors.trajectory import Trajectory
from neurofx.study.data import WindowSampler, load_dataset
from neurofx.study.encoder import gather_sequence

PEAK = ("import resource, sys; from neurofx.cli import main; rc = main(sys.argv[1:]); "
        "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")


def copy_store(src: TrajectoryStore, dst: Path, n: int, version: int) -> TrajectoryStore:
    """``n`` passes cycling through ``src``'s, each with its own seed (version 1: states kept)."""
    base = list(src)
    store = TrajectoryStore.open(dst, create=True, capacity=max(n, 1))
    for k in range(n):
        t = base[k % len(base)]
        states = t.states if version == 2 else np.asarray(t.states)
        rewards = t.rewards.copy()
        if k % 2:  # random passes lose: mirror the balance reward so the actor has some to clone
            rewards[:, 0] = -rewards[:, 0]
        copy = Trajectory(states=states, accounts=t.accounts, actions=t.actions,
                          rewards=rewards, profit=t.profit, policy=t.policy,
                          seed=100_000 + k, period=t.period, final_equity=t.final_equity,
                          discounted=True, extra={**t.extra, "copy_of": t.seed})
        assert store.add(copy, min_profit=-1e12).kept
    assert store.version == version
    return store


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def study_peak(root: Path, stage: str, store: Path, run: str, iterations: int) -> tuple[int, float]:
    """Peak RSS (bytes) and wall seconds of ``neurofx study <stage>`` in a fresh process."""
    cmd = [sys.executable, "-c", PEAK, "study", stage, "--store", str(store), "--run", run,
           "--iterations", str(iterations), "--no-progress", "--set",
           f"runs.root={json.dumps(str(root / 'runs'))}"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"study {stage} on {store} failed:\n{out.stderr[-2000:]}")
    kib = int(next(ln for ln in out.stdout.splitlines() if ln.startswith("MAXRSS")).split()[1])
    return kib * 1024, wall


def sampler_rate(store: Path, seconds: float, batch: int, seq_len: int) -> float:
    data = load_dataset(store, 0.0, 0)
    states = [t.states for t in data.trajs]
    sampler = WindowSampler(data.trajs, data.train, seq_len, np.random.default_rng(0))
    windows, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        b = sampler.batch(batch)
        gather_sequence(states, b)
        windows += batch
    return windows / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=int, default=4, help="real full-year passes to run")
    ap.add_argument("--passes", type=int, default=500, help="passes of the large store")
    ap.add_argument("--small", type=int, default=100, help="passes of the small store")
    ap.add_argument("--iterations", type=int, default=10, help="study iterations")
    ap.add_argument("--sampler-seconds", type=float, default=3.0)
    ap.add_argument("--keep", type=Path, default=None, help="work here and keep the stores")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="neurofx-store-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        real = root / "real"
        if not (real / "manifest.json").exists():
            assert cli_main(["research", "--store", str(real), "--passes", str(args.real),
                             "--seed", "13", "--min-profit=-1e12", "--jobs", "2", "--set",
                             f"runs.root={json.dumps(str(root / 'runs'))}"]) == 0
        src = TrajectoryStore.open(real)
        steps = src.entries[0]["steps"]
        print(f"real passes: {len(src)} random-policy passes over 2023, {steps} steps each "
              f"({time.perf_counter() - t0:.0f} s)")
        stores = {}
        for name, n, version in (("v1_16", 16, 1), ("v2_16", 16, 2),
                                 (f"v2_{args.small}", args.small, 2),
                                 (f"v2_{args.passes}", args.passes, 2)):
            path = root / name
            if not (path / "manifest.json").exists():
                t0 = time.perf_counter()
                copy_store(src, path, n, version)
                print(f"made {name}: {n} passes copied from the real ones "
                      f"({time.perf_counter() - t0:.0f} s)")
            stores[name] = path
        print(f"SYNTHETIC: the 16/{args.small}/{args.passes}-pass stores copy the per-step "
              f"records of the {len(src)} real passes with other seeds (every other one with its "
              f"balance reward mirrored)")
        print()
        print("disk bytes")
        for name, path in stores.items():
            b = disk_bytes(path)
            n = len(TrajectoryStore.open(path))
            print(f"  {name:>8}: {b / 2**20:9.1f} MiB  ({b / n / 2**20:.2f} MiB per pass)")
        b1 = disk_bytes(stores["v1_16"]) / 16
        print(f"  a 500-pass version-1 store would take {500 * b1 / 2**30:.1f} GiB")
        print()
        # an encoder for the actor studies
        enc_run = "bench_encoder"
        _, wall = study_peak(root, "encoder", stores["v2_16"], enc_run, 2)
        encoder = root / "runs" / enc_run / "encoder.npz"
        print(f"peak resident memory of 'neurofx study actor' ({args.iterations} iterations, "
              f"default model; encoder from 2 iterations on v2_16)")
        peaks = {}
        for name in ("v1_16", "v2_16", f"v2_{args.small}", f"v2_{args.passes}"):
            run = f"bench_{name}"
            (root / "runs" / run).mkdir(parents=True, exist_ok=True)
            shutil.copy(encoder, root / "runs" / run / "encoder.npz")
            peak, wall = study_peak(root, "actor", stores[name], run, args.iterations)
            peaks[name] = peak
            print(f"  {name:>8}: {peak / 2**20:8.0f} MiB  ({wall:.0f} s)")
        grow = (peaks[f"v2_{args.passes}"] - peaks[f"v2_{args.small}"]) / (
            args.passes - args.small)
        print(f"  growth per stored pass (v2, {args.small} -> {args.passes}): "
              f"{grow / 2**20:.2f} MiB   (v1 vs v2 at 16 passes: "
              f"{(peaks['v1_16'] - peaks['v2_16']) / 16 / 2**20:.1f} MiB more per pass)")
        print(f"  target: <= 2048 MiB at {args.passes} passes, <= 3 MiB per pass")
        print()
        print("sampler alone (WindowSampler.batch + gather_sequence of the states; batch 32, "
              "seq_len 100)")
        for name in ("v1_16", "v2_16"):
            rate = sampler_rate(stores[name], args.sampler_seconds, 32, 100)
            print(f"  {name:>8}: {rate:10.0f} windows/s")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
