"""Seed article 002's recurrent-autoencoder study (spec 8.2): how many past bars does a
recurrent encoder remember?

The model sees the last ``bars_in`` bars (state windows, newest first) one step at a time and
must rebuild the normalised features of the last ``bars_out`` bars: a FIFO stack of its own
normaliser's output for the newest bar of each of the last ``bars_out`` steps. Bars older
than ``bars_in`` are no longer in the input, so only the LSTM state can supply them.

Training runs B chronological sub-sequences of ``seq_len`` steps per batch from a zero state
(sequence mode, full backprop through time); the loss (MSE + the VAE's KL term) counts the
steps where the stack is full (step >= bars_out - 1), as the seed starts backprop only then.
Evaluation on the held-out bars (the last ``val_share`` of the decision bars, consecutive
windows from a reset state, eval mode: the VAE returns its mean) gives the reconstruction
MSE for every lag k (0 = newest bar) next to two references: the stack's mean square (the
error of predicting the normalised mean) and "persistence" (copy the oldest bar still in the
input, lag ``bars_in - 1``, for every older lag). A lag counts as recalled when its error is
below ``recall_ratio`` times the mean-square reference. Smooth features (RSI, ATR, MACD) of an
older bar can partly be inferred from the bars still in the input, so compare the lags beyond
the input with persistence, too.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from neurofx.atomic import json_safe, write_json_atomic, write_text_atomic
from neurofx.data import compute_features, first_valid_row, state_windows
from neurofx.errors import NeurofxError


def fifo_targets(norm: np.ndarray, n_vars: int, bars_out: int) -> np.ndarray:
    """Stacks (T - bars_out + 1, B, bars_out*n_vars) from normalised inputs norm (T, B, W):
    row s holds the newest bar (columns 0..n_vars-1) of steps t, t-1, .., t-bars_out+1 with
    t = s + bars_out - 1, newest first."""
    steps = norm.shape[0]
    newest = norm[..., :n_vars]
    return np.stack([np.concatenate([newest[t - k] for k in range(bars_out)], axis=-1)
                     for t in range(bars_out - 1, steps)])


def _write_csv_atomic(path: Path, header: list[str], rows: list[list]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def _check(name: str, value, low) -> None:
    if value < low:
        raise NeurofxError(f"autoencoder study: {name}={value} must be >= {low}")


def run_autoencoder_study(bars, out_dir, iterations: int = 200, seed: int = 0, *,
                          batch: int = 8, seq_len: int = 60, lr: float = 1e-3,
                          bars_in: int = 10, bars_out: int = 40,
                          lstm: tuple = (500, 250, 50), latent: int = 25,
                          decoder: tuple = (40, 80, 160),
                          val_share: float = 0.2, recall_ratio: float = 0.5,
                          optimizer: str = "adam", progress=None) -> dict:
    """Train the autoencoder on ``bars`` (OHLC + tick_volume frame, e.g. ``load_bars()``) and
    report the held-out reconstruction error by lag. Writes into ``out_dir``:
    ``autoencoder.npz`` (the model), ``autoencoder_lags.csv`` (lag, mse, mean-square and
    persistence references, ratio), ``autoencoder_loss.csv`` and ``autoencoder_study.json``
    (the returned summary; non-finite values are None), each atomically.
    ``progress(iteration, loss)`` is called after every batch when given.
    Returns the summary dict."""
    from neurofx.agents.autoencoder import RecurrentAutoencoder
    from neurofx.nn import ops
    from neurofx.nn.model import Model
    from neurofx.nn.optim import make_optimizer
    from neurofx.nn.tensor import Tensor, no_grad

    _check("iterations", iterations, 1)
    _check("batch", batch, 1)
    _check("bars_in", bars_in, 1)
    _check("bars_out", bars_out, bars_in)
    _check("seq_len", seq_len, bars_out)
    if not 0.0 < val_share < 1.0:
        raise NeurofxError(f"autoencoder study: val_share={val_share} must be in (0, 1)")
    feats = compute_features(bars)
    n_vars = feats.shape[1]
    ts = np.arange(first_valid_row(feats) + bars_in, len(feats) + 1)
    split = int(len(ts) * (1.0 - val_share))
    if split < seq_len + 1 or len(ts) - split < seq_len:
        raise NeurofxError(f"autoencoder study: {len(ts)} decision bars are too few for "
                           f"seq_len={seq_len} in both the training and the held-out part "
                           f"(val_share={val_share}); load more bars or lower --seq-len")
    x_all = state_windows(feats, ts, bars_in).astype(np.float32)
    net = RecurrentAutoencoder(n_vars, bars_in, bars_out, lstm, latent, decoder, seed=seed)
    model = Model(net, name="autoencoder")
    opt = make_optimizer(optimizer, model.store, lr=lr)
    rng = np.random.default_rng(seed)
    skip = bars_out - 1  # steps before the stack is full
    losses = []
    for it in range(iterations):
        rows = rng.integers(0, split - seq_len + 1, batch)[None, :] + np.arange(seq_len)[:, None]
        model.zero_grad()
        out = model.forward(x_all[rows])
        target = fifo_targets(net.last_normalised.numpy(), n_vars, bars_out)
        width = batch * bars_out * n_vars
        tail = ops.slice_cols(ops.reshape(out, (1, out.numel)), skip * width, out.numel)
        loss = ops.mse_loss(tail, Tensor.from_numpy(target.reshape(1, -1), device=out.device))
        for extra in net.extra_losses():
            loss = ops.add(loss, extra)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if progress is not None:
            progress(it + 1, losses[-1])

    # held-out: consecutive windows of seq_len steps, each from a reset state
    windows = (len(ts) - split) // seq_len
    rows = split + np.arange(windows)[None, :] * seq_len + np.arange(seq_len)[:, None]
    model.eval()
    model.reset_state()
    with no_grad():
        out = model.forward(x_all[rows])
        recon = out.numpy().astype(np.float64)[skip:]
        target = fifo_targets(net.last_normalised.numpy().astype(np.float64), n_vars, bars_out)
    model.train()
    shape = (*target.shape[:2], bars_out, n_vars)
    recon, target = recon.reshape(shape), target.reshape(shape)
    mse = ((recon - target) ** 2).mean(axis=(0, 1, 3))
    mean_sq = (target ** 2).mean(axis=(0, 1, 3))
    oldest = target[:, :, bars_in - 1:bars_in, :]
    persist = np.where(np.arange(bars_out) < bars_in, 0.0,
                       ((oldest - target) ** 2).mean(axis=(0, 1, 3)))
    ratio = mse / np.maximum(mean_sq, 1e-12)
    recalled = ratio < recall_ratio
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / "autoencoder.npz")
    _write_csv_atomic(out_dir / "autoencoder_lags.csv",
                      ["lag_bars", "mse", "mean_square", "persistence_mse", "mse_ratio",
                       "in_input"],
                      [[k, f"{mse[k]:.6g}", f"{mean_sq[k]:.6g}", f"{persist[k]:.6g}",
                        f"{ratio[k]:.6g}", int(k < bars_in)] for k in range(bars_out)])
    _write_csv_atomic(out_dir / "autoencoder_loss.csv", ["iteration", "loss"],
                      [[i + 1, f"{v:.6g}"] for i, v in enumerate(losses)])
    summary = {
        "iterations": iterations, "batch": batch, "seq_len": seq_len, "seed": seed,
        "bars_in": bars_in, "bars_out": bars_out, "lstm": list(lstm),
        "latent": latent, "decoder": list(decoder), "train_bars": int(split), "heldout_states":
            int(recon.shape[0] * recon.shape[1]), "recall_ratio": recall_ratio,
        "recalled_lags": int(recalled.sum()),
        "recalled_beyond_input": int(recalled[bars_in:].sum()),
        "mse_ratio_in_input": float(ratio[:bars_in].mean()),
        "mse_ratio_beyond_input": float(ratio[bars_in:].mean()),
        "beats_persistence_lags": int((mse[bars_in:] < persist[bars_in:]).sum()),
        "mse_by_lag": [float(v) for v in mse], "mean_square_by_lag": [float(v) for v in mean_sq],
        "persistence_by_lag": [float(v) for v in persist],
        "final_train_loss": float(np.mean(losses[-10:])),
    }
    summary = json_safe(summary)  # e.g. a diverged loss: NaN -> null
    write_json_atomic(out_dir / "autoencoder_study.json", summary)
    return summary


__all__ = ["fifo_targets", "run_autoencoder_study"]
