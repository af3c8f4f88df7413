"""Training throughput of the seed-sized MLP 1080-256-256-216 (tanh) with plain SGD.

Prints samples/s at batch 1, 32 and 256 for neurofx's OpenCL engine and, when PyTorch happens
to be installed (it is never a dependency), for the same model in torch in the same run.

    python benchmarks/train_mlp.py [--steps 200] [--optimizer sgd]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from neurofx.nn import Dense, Model, Sequential, get_device
from neurofx.nn.optim import make_optimizer

SIZES = (1080, 256, 256, 216)


def neurofx_rate(batch: int, steps: int, optimizer: str) -> float:
    net = Sequential([Dense(SIZES[0], SIZES[1], "tanh", seed=0),
                      Dense(SIZES[1], SIZES[2], "tanh", seed=1),
                      Dense(SIZES[2], SIZES[3], "none", seed=2)])
    model = Model(net, name=f"bench{batch}")
    opt = make_optimizer(optimizer, model.store, lr=1e-3)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, SIZES[0])).astype(np.float32)
    y = rng.normal(size=(batch, SIZES[-1])).astype(np.float32)
    for _ in range(5):
        model.train_step(x, y, opt)
    dev = get_device()
    dev.finish()
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train_step(x, y, opt)
    dev.finish()
    return batch * steps / (time.perf_counter() - t0)


def torch_rate(batch: int, steps: int, optimizer: str) -> float | None:
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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    args = ap.parse_args()
    print(f"device: {get_device().info}")
    sizes = "-".join(map(str, SIZES))
    print(f"MLP {sizes} tanh, {args.optimizer}, {args.steps} steps per batch size")
    print(f"{'batch':>6} {'neurofx samples/s':>18} {'ms/step':>8} "
          f"{'torch samples/s':>16} {'ratio':>6}")
    for batch in (1, 32, 256):
        steps = max(args.steps // (1 if batch < 256 else 4), 10)
        ours = neurofx_rate(batch, steps, args.optimizer)
        theirs = torch_rate(batch, steps, args.optimizer)
        ratio = f"{ours / theirs:6.2f}" if theirs else "     -"
        t = f"{theirs:16.0f}" if theirs else f"{'(no torch)':>16}"
        print(f"{batch:>6} {ours:18.0f} {1000 * batch / ours:8.2f} {t} {ratio}")


if __name__ == "__main__":
    main()
