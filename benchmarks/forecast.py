"""Held-out forecast error of the encoders against the mean and linear baselines (issue 16).

    .venv/bin/python benchmarks/forecast.py [--splits A,B] [--encoders skip,baseline,...]
                                            [--work DIR] [--iterations-scale X]

Two chronological splits of the bundled EURUSD H1 bars:

* A: train on the first 80 % of 2023's decision bars, hold out the last 20 %;
* B: train on 2017-05 .. 2021, hold out 2022.

Each encoder is trained by ``neurofx study encoder`` (the recipe of :data:`ENCODERS`) on a
store of random-policy research passes that END where the held-out part begins, so nothing
trained sees a held-out bar (the last 24 training steps have no target and are not used).
The baselines are fitted on the same training bars: the training mean, persistence (the last
closed bar), one AR(1) coefficient per feature and horizon on the last bar, and ridge
regression on the full 1080-value window (closed form, :mod:`neurofx.agents.ridge`, one
penalty chosen on the last 20 % of the training span).

All errors are standardised MSEs (each feature divided by its training std, as the study's
targets) over the 24 x 9 targets of every held-out decision bar whose 24 target bars are
held-out bars. Each split ends with
``encoder/best-linear SPLIT: R=... ci95=[..., ...]`` for the default encoder of
``neurofx study encoder``: R = its MSE over the best linear baseline's (AR(1) or ridge, the
lower), the interval from a paired moving-block bootstrap over held-out days (blocks of 5
days, 10000 resamples).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from neurofx import agents, commands
from neurofx.agents import ridge
from neurofx.data import compute_features, load_bars
from neurofx.data.features import state_windows
from neurofx.schema import BAR_FEATURES, FEATURE_NAMES, FORECAST_BARS, HISTORY_BARS
from neurofx.study.encoder import forecast, load_encoder

SPLITS = {"A": ("2023-01-01", None, "2024-01-01"), "B": ("2017-01-01", "2022-01-01", "2023-01-01")}
# name -> (study flags, label); "skip" is what `neurofx study encoder` trains by default
ENCODERS = {
    "skip": ([], "skip (default: fitted volatility-scaled ridge)"),
    "skip-residual": (["--model", "skip", "--model-arg", "encoder.hidden=64"],
                      "skip + residual MLP (hidden 64)"),
    "baseline": (["--model", "baseline"], "baseline MLP 1080-256-256-216"),
    "tpm-small": (["--model", "tpm", "--model-arg", "encoder.hidden=32", "--seq-len", "50",
                   "--iterations", "60"], "tpm, quickstart sizes (hidden 32)"),
    "tpm-seed": (["--model", "tpm", "--iterations", "100"], "tpm, seed sizes (hidden 256)"),
}
RESEARCH_PASSES = 4
BLOCK_DAYS, RESAMPLES = 5, 10000


def split_bars(bars, name: str):
    """(training decision bars, held-out decision bars, cut time) as bar indices."""
    first, cut, end = SPLITS[name]
    t = bars.index
    span = np.flatnonzero((t >= first) & (t < end))
    # A: the first 80 % of the year's bars; B: a calendar cut
    cut_i = span[int(0.8 * len(span))] if cut is None else int(np.flatnonzero(t >= cut)[0])
    train = span[span < cut_i]
    held = span[(span >= cut_i) & (span + FORECAST_BARS <= span[-1] + 1)]
    return train, held, t[cut_i]


def windows(feats: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """The state windows (inputs) of decision bars ``ts``."""
    return state_windows(feats, ts)


def targets(feats: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Their encoder targets: the window of the 24 bars that follow each (newest first)."""
    return state_windows(feats, ts + FORECAST_BARS, FORECAST_BARS)


def baselines(x_tr, y_tr, x_te, std_tile) -> dict[str, np.ndarray]:
    """Raw-unit forecasts of the held-out rows by the mean, persistence, AR(1) and ridge."""
    out = {"mean": np.broadcast_to(y_tr.mean(axis=0), (len(x_te), y_tr.shape[1])),
           "persistence": np.tile(x_te[:, :BAR_FEATURES], FORECAST_BARS)}
    ar = np.empty((len(x_te), y_tr.shape[1]))
    for k in range(y_tr.shape[1]):
        f = k % BAR_FEATURES
        xc = x_tr[:, f] - x_tr[:, f].mean()
        beta = (xc @ (y_tr[:, k] - y_tr[:, k].mean())) / (xc @ xc)
        ar[:, k] = y_tr[:, k].mean() + beta * (x_te[:, f] - x_tr[:, f].mean())
    out["ar1"] = ar

    def score(fit, rows):
        return (((fit.predict(x_tr[rows]) - y_tr[rows]) / std_tile) ** 2).mean(axis=0)

    penalty = ridge.choose_penalties(x_tr, y_tr, score, 0.2, FORECAST_BARS)
    out["ridge"] = ridge.fit(x_tr, y_tr, penalty).predict(x_te)
    out["_ridge_penalty"] = penalty[0]
    return out


def block_bootstrap(err_model, err_base, days, seed: int = 0) -> tuple[float, float]:
    """95 % interval of sum(err_model)/sum(err_base) resampling blocks of held-out days."""
    _, inv = np.unique(days, return_inverse=True)
    a, b = np.bincount(inv, err_model), np.bincount(inv, err_base)
    n = len(a)
    block = min(BLOCK_DAYS, n)
    rng = np.random.default_rng(seed)
    ratios = np.empty(RESAMPLES)
    for i in range(RESAMPLES):
        starts = rng.integers(0, n - block + 1, size=n // block + 1)
        idx = (starts[:, None] + np.arange(block)).ravel()[:n]
        ratios[i] = a[idx].sum() / b[idx].sum()
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return float(lo), float(hi)


def run_cli(argv: list[str]) -> None:
    print("$ neurofx " + " ".join(argv), flush=True)
    rc = commands.main(argv)
    if rc:
        raise SystemExit(f"neurofx {argv[0]} failed with exit code {rc}")


def train_encoder(work: Path, store: Path, name: str, scale: float, split: str) -> Path:
    flags, _ = ENCODERS[name]
    flags = list(flags)
    if "--iterations" in flags and scale != 1.0:
        i = flags.index("--iterations") + 1
        flags[i] = str(max(1, int(int(flags[i]) * scale)))
    elif scale != 1.0:
        flags += ["--iterations", str(max(1, int(200 * scale)))]
    run = f"enc_{split}_{name}"
    t0 = time.perf_counter()
    run_cli(["study", "encoder", "--store", str(store), "--run", run, "--no-progress",
             "--fresh", "--set", f"runs.root={work}", *flags])
    print(f"  {name}: trained in {time.perf_counter() - t0:.0f} s", flush=True)
    return work / run / "encoder.npz"


def encoder_forecasts(path: Path, x_te: np.ndarray, linear_only: bool = False) -> np.ndarray:
    model, scaler = load_encoder(path)
    if linear_only:  # the skip encoder's fitted path alone: the residual head set to zero
        model.load_parameters({k: np.zeros_like(v) if k.startswith("head.") else v
                               for k, v in model.named_parameters().items()})
    return forecast(model, scaler, x_te.astype(np.float32))


def run_split(name: str, bars, feats, encoders: list[str], work: Path, scale: float) -> None:
    train, held, cut = split_bars(bars, name)
    first = max(int(train[0]), int(np.flatnonzero(np.isfinite(feats).all(axis=1))[0])
                + HISTORY_BARS + 1)
    train = train[(train >= first) & (train + FORECAST_BARS <= held[0])]
    x_tr, y_tr = windows(feats, train), targets(feats, train)
    x_te, y_te = windows(feats, held), targets(feats, held)
    std = feats[train - 1].std(axis=0)
    std_tile = np.tile(std, FORECAST_BARS)
    days = np.asarray(bars.index[held].normalize())
    print(f"\n== split {name}: train {bars.index[train[0]]} .. {bars.index[train[-1]]} "
          f"({len(train)} decisions), held out {bars.index[held[0]]} .. "
          f"{bars.index[held[-1]]} ({len(held)} decisions, {len(np.unique(days))} days)",
          flush=True)
    preds = baselines(x_tr, y_tr, x_te, std_tile)
    penalty = preds.pop("_ridge_penalty")
    labels = {"mean": "training mean", "persistence": "persistence (last bar)",
              "ar1": "AR(1) per feature and horizon", "ridge": f"ridge, 1080 inputs "
              f"(penalty {penalty:g})"}
    if encoders:
        store = work / f"store_{name}"
        run_cli(["research", "--passes", str(RESEARCH_PASSES), "--seed", "1", "--store",
                 str(store), "--start", bars.index[first].strftime("%Y-%m-%d %H:%M"), "--end",
                 cut.strftime("%Y-%m-%d %H:%M"), "--min-profit=-1e9", "--jobs", "2",
                 "--set", f"runs.root={work}"])
        for enc in encoders:
            path = train_encoder(work, store, enc, scale, name)
            preds[enc] = encoder_forecasts(path, x_te)
            labels[enc] = ENCODERS[enc][1]
            if enc == "skip-residual":
                preds["skip-linear"] = encoder_forecasts(path, x_te, linear_only=True)
                labels["skip-linear"] = "  the same, residual zeroed (fitted path only)"
    errs = {k: (((p - y_te) / std_tile) ** 2) for k, p in preds.items()}
    head = "".join(f"{f[:9]:>10}" for f in FEATURE_NAMES)
    print(f"{'model':<48}{'MSE':>8}{head}")
    for k, e in errs.items():
        per = e.reshape(len(e), FORECAST_BARS, BAR_FEATURES).mean(axis=(0, 1))
        print(f"{labels[k]:<48}{e.mean():8.4f}" + "".join(f"{v:10.3f}" for v in per))
    best = min(("ar1", "ridge"), key=lambda k: errs[k].mean())
    default = agents.resolve("encoder", "auto")
    if default in errs:
        e_m, e_b = errs[default].mean(axis=1), errs[best].mean(axis=1)
        lo, hi = block_bootstrap(e_m, e_b, days)
        print(f"best linear baseline: {best}")
        print(f"encoder/best-linear {name}: R={e_m.mean() / e_b.mean():.4f} "
              f"ci95=[{lo:.4f}, {hi:.4f}]", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", default="A,B")
    ap.add_argument("--encoders", default=",".join(ENCODERS),
                    help=f"comma list of {', '.join(ENCODERS)} (empty: baselines only)")
    ap.add_argument("--work", help="folder for stores and runs (default: a temporary one)")
    ap.add_argument("--iterations-scale", type=float, default=1.0,
                    help="multiply every recipe's iterations (quick checks)")
    args = ap.parse_args()
    encoders = [e for e in args.encoders.split(",") if e]
    unknown = [e for e in encoders if e not in ENCODERS]
    if unknown:
        raise SystemExit(f"--encoders: unknown {unknown}; valid: {', '.join(ENCODERS)}")
    bars = load_bars()
    feats = compute_features(bars).astype(np.float64)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        for name in args.splits.split(","):
            run_split(name, bars, feats, encoders, work, args.iterations_scale)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
