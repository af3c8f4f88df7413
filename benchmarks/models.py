"""The seed's TPM encoder, actor and critic: size, memory, speed, and a forecast check.

    .venv/bin/python benchmarks/models.py [--bars 20] [--batch 8] [--seq 100] [--iters 3]
        [--repeats 3] [--speed-only] [--training-only [--against COMMIT]]
        [--forecast] [--f-bars 120] [--f-hidden 32] [--f-seq 24] [--f-batch 8] [--f-iters 300]

1. ``model.summary()`` of the encoder, actor and critic at the spec's sizes, with the
   Adam-mini state of one step.
2. Optimizer state bytes after one step, Adam vs Adam-mini, per model.
3. Stateful inference: ms per bar for encoder + actor, batch 1, ``--bars`` bars after warm-up,
   eager models and planned ones (captured execution plans) in the same run, median of
   ``--repeats`` runs, and whether both gave the same bits.
4. Encoder training samples/s on ``--seq``-step sub-sequences, ``--batch`` of them per step:
   sequence mode, full backprop through time, FreDF loss, one Adam step per batch; eager and
   planned, median of ``--repeats`` runs of ``--iters`` steps. ``--against COMMIT`` also
   times the eager path of the code at ``COMMIT`` (issue 14 compares with the eager path as it
   was when it was filed, ``ec23601``): that revision is installed once into a temporary
   folder (``git archive`` + ``pip install --no-deps --target``) and run in a child process,
   alternating with the current code round by round, so all three figures share the run.
5. ``--forecast``: train an encoder briefly on the bundled 2023 bars (first 80 % of the
   year's decision bars; targets = the next 24 bars' features, standardised with the training
   bars' statistics) and report the held-out MSE (last 20 %, consecutive ``--f-seq``-step
   windows from a reset state) next to the naive forecast "the next 24 bars equal the last
   bar" and the training-mean forecast (zeros in standardised units).

Timings on the shared CPU (PoCL) are noisy; the first call of each shape compiles kernels and
is excluded.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from neurofx import agents
from neurofx.agents.tpm import LOSSES
from neurofx.nn import no_grad
from neurofx.nn.optim import make_optimizer
from neurofx.schema import FORECAST_BARS


def build_all():
    return (agents.build("encoder", "tpm"), agents.build("actor", "tpm"),
            agents.build("critic", "tpm"))


def optimizer_memory(rng) -> None:
    print("\n== optimizer state after one step (bytes) ==")
    print(f"{'model':8s} {'params':>10s} {'adam':>12s} {'adam-mini':>12s} {'ratio':>7s}")
    for role in ("encoder", "actor", "critic"):
        sizes = {}
        for name in ("adam", "adam-mini"):
            model = agents.build(role, "tpm", model_name=f"{role}_{name}")
            opt = make_optimizer(name, model.store, lr=1e-4)
            model.train_step(*sample_io(role, rng, 1), opt)
            sizes[name] = opt.state_bytes()
        print(f"{role:8s} {model.num_parameters:10d} {sizes['adam']:12d} "
              f"{sizes['adam-mini']:12d} {sizes['adam-mini'] / sizes['adam']:7.4f}")


def sample_io(role, rng, batch):
    fc = rng.normal(size=(batch, 216)).astype(np.float32)
    if role == "encoder":
        return rng.normal(size=(batch, 1080)).astype(np.float32), fc
    if role == "actor":
        return (rng.normal(size=(batch, 12)).astype(np.float32), fc), \
            rng.normal(size=(batch, 6)).astype(np.float32)
    return (rng.normal(size=(batch, 6)).astype(np.float32), fc), \
        rng.normal(size=(batch, 3)).astype(np.float32)


def inference(bars, repeats, rng) -> None:
    """Stateful batch-1 encoder + actor per bar, eager and planned models in the same run."""
    states = rng.normal(size=(bars + 2, 1, 1080)).astype(np.float32)
    account = rng.normal(size=(1, 12)).astype(np.float32)
    print(f"\n== stateful inference, batch 1, encoder + actor ({bars} bars, median of "
          f"{repeats}) ==")
    outs = {}
    for mode in ("eager", "planned", "planned-1sync"):
        enc, act = (agents.build(r, "tpm", model_name=f"{r}_{mode}") for r in ("encoder", "actor"))
        enc.eager = act.eager = mode == "eager"
        sync = mode != "planned-1sync"  # the forecast stays on the device: one wait per bar
        times, outs[mode] = [], []
        for _ in range(repeats):
            enc.reset_state()
            act.reset_state()
            for s in states[:2]:  # warm-up: kernel builds, plan recording
                act.predict(account, enc.predict(s, sync=sync))
            t0 = time.perf_counter()
            for s in states[2:]:
                outs[mode].append(act.predict(account, enc.predict(s, sync=sync)))
            times.append((time.perf_counter() - t0) / bars * 1e3)
        info = {m.name: m.plan_info().get("predict", {}).get("launches") for m in (enc, act)}
        print(f"{mode:13s} {np.median(times):7.2f} ms per bar (runs: "
              + " ".join(f"{t:.2f}" for t in times) + ")"
              + ("" if mode == "eager" else f"  launches per plan {info}"))
    same = all(np.array_equal(a, b) for mode in ("planned", "planned-1sync")
               for a, b in zip(outs["eager"], outs[mode], strict=True))
    print(f"planned == eager bit for bit: {same}")


def training_encoder(mode: str, x, y):
    """The seed-size TPM encoder and its Adam, ``mode`` eager or planned, after one warm-up
    step (which records the plan)."""
    enc = agents.build("encoder", "tpm", model_name=f"encoder_train_{mode}")
    enc.eager = mode == "eager"
    enc.loss_fn = LOSSES["encoder:tpm"]
    opt = make_optimizer("adam", enc.store, lr=3e-4)
    enc.train_step(x, y, opt)
    return enc, opt


def training_speed(seq, batch, iters, repeats, rng) -> None:
    """Encoder training samples/s on sub-sequences, eager and planned in the same run."""
    x = rng.normal(size=(seq, batch, 1080)).astype(np.float32)
    y = rng.normal(size=(seq, batch, 216)).astype(np.float32)
    print(f"\n== encoder training: {seq}-step sub-sequences x {batch}, full BPTT, FreDF, Adam "
          f"(median of {repeats} x {iters} steps) ==")
    rates = {}
    for mode in ("eager", "planned"):
        enc, opt = training_encoder(mode, x, y)
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(iters):
                enc.train_step(x, y, opt)
            runs.append(seq * batch * iters / (time.perf_counter() - t0))
        rates[mode] = float(np.median(runs))
        print(f"{mode:8s} {rates[mode]:8.1f} samples/s (runs: "
              + " ".join(f"{r:.1f}" for r in runs) + ")")
    print(f"planned / eager: {rates['planned'] / rates['eager']:.2f}x")


# the training measure in a child process on another revision's installed code (its eager path)
_OLD_TRAINING = """
import sys, time
import numpy as np
from neurofx import agents
from neurofx.agents.tpm import LOSSES
from neurofx.nn.optim import make_optimizer
seq, batch, iters = (int(a) for a in sys.argv[1:4])
rng = np.random.default_rng(0)
x = rng.normal(size=(seq, batch, 1080)).astype(np.float32)
y = rng.normal(size=(seq, batch, 216)).astype(np.float32)
enc = agents.build("encoder", "tpm", model_name="encoder_train_old")
enc.loss_fn = LOSSES["encoder:tpm"]
opt = make_optimizer("adam", enc.store, lr=3e-4)
enc.train_step(x, y, opt)
t0 = time.perf_counter()
for _ in range(iters):
    enc.train_step(x, y, opt)
print(seq * batch * iters / (time.perf_counter() - t0))
"""


def install_revision(commit: str) -> Path:
    """The package as of ``commit``, installed (once) into a temporary folder; its path."""
    root = Path(tempfile.gettempdir()) / f"neurofx-rev-{commit}"
    site = root / "site"
    if not (site / "neurofx").is_dir():
        src = root / "src"
        src.mkdir(parents=True, exist_ok=True)
        repo = Path(__file__).resolve().parent.parent
        archive = subprocess.run(["git", "-C", str(repo), "archive", commit], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--no-build-isolation", "--target", str(site), str(src)], check=True)
    return site


def old_training_rate(site: Path, seq: int, batch: int, iters: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(site), NEUROFX_VERBOSE="0")
    out = subprocess.run([sys.executable, "-c", _OLD_TRAINING, str(seq), str(batch),
                          str(iters)], env=env, check=True, capture_output=True, text=True,
                         cwd=tempfile.gettempdir())
    return float(out.stdout.strip().splitlines()[-1])


def training_against(commit, seq, batch, iters, repeats, rng) -> None:
    """Rounds of (eager at ``commit``, eager now, planned now), samples/s each."""
    site = install_revision(commit)
    x = rng.normal(size=(seq, batch, 1080)).astype(np.float32)
    y = rng.normal(size=(seq, batch, 216)).astype(np.float32)
    models = {mode: training_encoder(mode, x, y) for mode in ("eager", "planned")}
    print(f"\n== encoder training: {seq}-step sub-sequences x {batch}, full BPTT, FreDF, Adam; "
          f"{repeats} rounds of {iters} steps per case, samples/s ==")
    print(f"{'round':>5s} {'eager@' + commit:>14s} {'eager now':>10s} {'planned now':>12s} "
          f"{'planned / eager@' + commit:>24s}")
    rows = []
    for r in range(repeats):
        old = old_training_rate(site, seq, batch, iters)
        now = {}
        for mode, (enc, opt) in models.items():
            t0 = time.perf_counter()
            for _ in range(iters):
                enc.train_step(x, y, opt)
            now[mode] = seq * batch * iters / (time.perf_counter() - t0)
        rows.append((old, now["eager"], now["planned"]))
        print(f"{r + 1:5d} {old:14.1f} {now['eager']:10.1f} {now['planned']:12.1f} "
              f"{now['planned'] / old:24.2f}x", flush=True)
    med = np.median(np.array(rows), axis=0)
    print(f"median {med[0]:12.1f} {med[1]:10.1f} {med[2]:12.1f} {med[2] / med[0]:24.2f}x "
          f"(planned / eager now: {med[2] / med[1]:.2f}x)")


def forecast_check(bars, hidden, seq, batch, iters, lr, seed) -> dict:
    """Train an encoder on 2023 and score held-out forecasts (see the module docstring)."""
    from neurofx.data import compute_features, first_decision_bar, load_bars, state_windows

    data = load_bars()
    feats = compute_features(data).astype(np.float64)
    year = np.flatnonzero(data.index.year == 2023)
    ts = np.arange(max(year[0], first_decision_bar(feats, bars)), year[-1] - FORECAST_BARS + 2)
    split = ts[int(0.8 * len(ts))]
    train = ts[ts + FORECAST_BARS <= split]  # no training target reaches a held-out bar
    mean, std = feats[train - 1].mean(axis=0), feats[train - 1].std(axis=0)
    rows_ahead = ts[:, None] + FORECAST_BARS - 1 - np.arange(FORECAST_BARS)  # newest first
    y_all = ((feats[rows_ahead] - mean) / std).reshape(len(ts), -1).astype(np.float32)
    x_all = state_windows(feats, ts, bars).astype(np.float32)
    model = agents.build("encoder", "tpm", bars=bars, hidden=hidden, seed=seed,
                         model_name="encoder_fc")
    model.loss_fn = LOSSES["encoder:tpm"]
    opt = make_optimizer("adam", model.store, lr=lr)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for _ in range(iters):
        rows = rng.integers(0, len(train) - seq, batch)[None, :] + np.arange(seq)[:, None]
        model.train_step(x_all[rows], y_all[rows], opt)
    train_s = time.perf_counter() - t0
    first = int(np.searchsorted(ts, split))
    windows = (len(ts) - first) // seq
    rows = first + np.arange(windows)[None, :] * seq + np.arange(seq)[:, None]
    model.reset_state()
    with no_grad():
        pred = model.predict(x_all[rows]).astype(np.float64)
    y = y_all[rows].astype(np.float64)
    last = (feats[ts[rows] - 1] - mean) / std
    naive = np.tile(last, (1, 1, FORECAST_BARS))
    return {"model": float(((pred - y) ** 2).mean()), "naive": float(((naive - y) ** 2).mean()),
            "mean": float((y ** 2).mean()), "held_out": int(y.shape[0] * y.shape[1]),
            "train_s": train_s,
            "per_feature": ((pred - y) ** 2).reshape(-1, FORECAST_BARS, 9).mean(axis=(0, 1))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bars", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=100)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--speed-only", action="store_true",
                    help="skip the summaries and the optimizer table")
    ap.add_argument("--training-only", action="store_true",
                    help="only the encoder training table (section 4)")
    ap.add_argument("--against", default="", metavar="COMMIT",
                    help="with --training-only: also time the eager path of COMMIT")
    ap.add_argument("--forecast", action="store_true")
    ap.add_argument("--f-bars", type=int, default=120)
    ap.add_argument("--f-hidden", type=int, default=32)
    ap.add_argument("--f-seq", type=int, default=24)
    ap.add_argument("--f-batch", type=int, default=8)
    ap.add_argument("--f-iters", type=int, default=300)
    ap.add_argument("--f-lr", type=float, default=1e-3)
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    if args.training_only:
        if args.against:
            training_against(args.against, args.seq, args.batch, args.iters, args.repeats, rng)
        else:
            training_speed(args.seq, args.batch, args.iters, args.repeats, rng)
        return
    if not args.skip_speed and not args.speed_only:
        enc, act, crit = build_all()
        for model, shapes in ((enc, [(1080,)]), (act, [(12,), (216,)]), (crit, [(6,), (216,)])):
            opt = make_optimizer("adam-mini", model.store, lr=1e-6)
            model.train_step(*sample_io(model.name, rng, 1), opt)
            model.reset_state()
            print(f"\n== {model.name} (Adam-mini state after one step) ==")
            print(model.summary(batch=1, optimizer=opt, input_shapes=shapes))
        optimizer_memory(rng)
    if not args.skip_speed:
        inference(args.bars, args.repeats, rng)
        training_speed(args.seq, args.batch, args.iters, args.repeats, rng)
    if args.forecast:
        r = forecast_check(args.f_bars, args.f_hidden, args.f_seq, args.f_batch, args.f_iters,
                           args.f_lr, 0)
        print(f"\n== forecast, 2023 held-out (last 20 %), {r['held_out']} states, standardised "
              f"units ==\nencoder bars={args.f_bars} hidden={args.f_hidden}, {args.f_iters} "
              f"batches of {args.f_batch} x {args.f_seq} steps ({r['train_s']:.0f} s)\n"
              f"MSE model {r['model']:.4f} | naive (last bar) {r['naive']:.4f} | "
              f"training mean {r['mean']:.4f}\nper feature (model): "
              + " ".join(f"{v:.3f}" for v in r["per_feature"]))


if __name__ == "__main__":
    main()
