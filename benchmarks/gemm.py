"""GFLOP/s of the OpenCL matmul kernels (nn/gemm.py) next to numpy float32 ``@``.

Shapes: the three products of training a Dense 1080 -> 256 layer at batch 64 (forward
X @ W^T, dX = dY @ W, dW += dY^T @ X), then 256^3 and 1024^3 in all four transpose cases.
Each figure is the best of ``--trials`` timings of a burst of launches ended by one
``finish`` (the machine is shared, so the best trial is the least disturbed one); the load
average is printed before and after. ``--paths`` adds the figures of the direct kernels and
of the packed path forced on (nn/gemm.py picks one per shape; tt is always packed).

    .venv/bin/python benchmarks/gemm.py [--trials 5] [--seconds 0.3] [--paths]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from neurofx.nn.device import get_device
from neurofx.nn.gemm import get_gemm

# (label, m, n, k, trans_a, trans_b, accumulate)
CASES = [
    ("forward X@W^T (64x1080)@(256x1080)^T", 64, 256, 1080, False, True, False),
    ("dX = dY@W (64x256)@(256x1080)", 64, 1080, 256, False, False, False),
    ("dW += dY^T@X (64x256)^T@(64x1080)", 256, 1080, 64, True, False, True),
    *[(f"{s}^3 {tag}", s, s, s, ta, tb, False)
      for s in (256, 1024)
      for tag, ta, tb in (("nn", False, False), ("nt", False, True), ("tn", True, False),
                          ("tt", True, True))],
]


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def best_seconds(run, finish, trials: int, seconds: float) -> float:
    """Best per-call time over ``trials`` bursts, each about ``seconds`` long."""
    run()
    finish()
    t0 = time.perf_counter()
    run()
    finish()
    reps = max(1, int(seconds / max(time.perf_counter() - t0, 1e-6)))
    best = float("inf")
    for _ in range(trials):
        t0 = time.perf_counter()
        for _ in range(reps):
            run()
        finish()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5, help="timed bursts per case")
    parser.add_argument("--seconds", type=float, default=0.3, help="length of one burst")
    parser.add_argument("--paths", action="store_true", help="also time direct and packed")
    args = parser.parse_args()

    dev = get_device()
    gemm = get_gemm(dev)
    rng = np.random.default_rng(0)
    print(f"load average before: {_load()}")
    extra = f" {'direct':>8s} {'packed':>8s}" if args.paths else ""
    print(f"{'GFLOP/s':40s} {'m x n x k':>16s} {'OpenCL':>8s} {'numpy':>8s} {'ratio':>6s}{extra}")
    for label, m, n, k, ta, tb, acc in CASES:
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
        c = np.zeros((m, n), np.float32)
        a_buf, b_buf, c_buf = dev.to_device(a), dev.to_device(b), dev.to_device(c)

        def run_cl(a_buf=a_buf, b_buf=b_buf, c_buf=c_buf, m=m, n=n, k=k, ta=ta, tb=tb, acc=acc):
            gemm.gemm(a_buf, b_buf, c_buf, m, n, k, trans_a=ta, trans_b=tb, accumulate=acc)

        op_a, op_b = (a.T if ta else a), (b.T if tb else b)
        if acc:
            def run_np(op_a=op_a, op_b=op_b, c=c):
                c += op_a @ op_b
        else:
            def run_np(op_a=op_a, op_b=op_b, c=c):
                np.matmul(op_a, op_b, out=c)

        flop = 2.0 * m * n * k
        t_cl = best_seconds(run_cl, dev.finish, args.trials, args.seconds)
        t_np = best_seconds(run_np, lambda: None, args.trials, args.seconds)
        line = (f"{label:40s} {f'{m}x{n}x{k}':>16s} {flop / t_cl / 1e9:8.1f} "
                f"{flop / t_np / 1e9:8.1f} {t_np / t_cl:6.2f}")
        if args.paths:
            for packing in (False, True):
                gemm.packing = packing
                try:
                    if packing or not (ta and tb):
                        t = best_seconds(run_cl, dev.finish, args.trials, args.seconds)
                        line += f" {flop / t / 1e9:8.1f}"
                    else:
                        line += f" {'-':>8s}"
                finally:
                    gemm.packing = None
        print(line, flush=True)
    print(f"load average after: {_load()}")


if __name__ == "__main__":
    main()
