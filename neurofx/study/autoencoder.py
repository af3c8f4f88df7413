"""Seed article 002's recurrent-autoencoder study (spec 8.2), a stage of the
:class:`~neurofx.study.trainer.Trainer`: how many past bars does a recurrent encoder remember?

The model sees the last ``bars_in`` bars (state windows, newest first) one step at a time and
must rebuild the normalised features of the last ``bars_out`` bars: a FIFO stack of its own
normaliser's output for the newest bar of each of the last ``bars_out`` steps. Bars older
than ``bars_in`` are no longer in the input, so only the LSTM state can supply them.

Training runs B chronological sub-sequences of ``seq_len`` decision bars per batch (random
starts in the first ``1 - val_share`` of the decision bars, drawn with the trainer's RNG) from
a zero state (sequence mode, full backprop through time); the loss (MSE + the VAE's KL term)
counts the steps where the stack is full (step >= bars_out - 1), as the seed starts backprop
only then. The optimizer gets the learning rate and its own defaults otherwise (not the seed's
Adam betas of the encoder and actor stages).

The held-out bars (the last ``val_share`` of the decision bars) are cut into consecutive
windows of ``seq_len`` steps, each run from a reset state in eval mode (the VAE returns its
mean). Validation (``val_loss``, for the log and early stopping) is their reconstruction MSE
over all lags; the model's running statistics are restored afterwards, so validation never
changes training. ``autoencoder.npz`` holds the last weights (not the best validated: the
held-out bars are also those of the lag study). At the end, :meth:`AutoencoderStage.finish`
gives the reconstruction MSE for every lag k (0 = newest bar) next to two references: the
stack's mean square (the error of predicting the normalised mean) and "persistence" (copy the
oldest bar still in the input, lag ``bars_in - 1``, for every older lag). A lag counts as
recalled when its error is below ``recall_ratio`` times the mean-square reference. Smooth
features (RSI, ATR, MACD) of an older bar can partly be inferred from the bars still in the
input, so compare the lags beyond the input with persistence, too.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import asdict, dataclass, fields

import numpy as np

from neurofx.agents.autoencoder import RecurrentAutoencoder
from neurofx.atomic import json_safe, write_json_atomic, write_text_atomic
from neurofx.data.features import compute_features, first_valid_row, state_windows
from neurofx.errors import NeurofxError
from neurofx.nn import ops
from neurofx.nn.model import Model
from neurofx.nn.tensor import Tensor, no_grad

from . import files
from .losses import with_extras
from .settings import Settings
from .stage import Part, Stage

ROLE = "autoencoder"
AUTOENCODER_FILE = "autoencoder.npz"
LAGS_CSV = "autoencoder_lags.csv"
STUDY_JSON = "autoencoder_study.json"


@dataclass(frozen=True)
class AutoencoderOptions:
    """The study's sizes and recall threshold (``Settings.model_args["autoencoder"]``)."""

    bars_in: int = 10
    bars_out: int = 40
    lstm: tuple = (500, 250, 50)
    latent: int = 25
    decoder: tuple = (40, 80, 160)
    recall_ratio: float = 0.5

    @classmethod
    def from_args(cls, args: dict) -> AutoencoderOptions:
        """From ``{key: value}`` overrides; an unknown key or a bad size list is a one-line
        error naming ``--model-arg autoencoder.<key>``."""
        valid = [f.name for f in fields(cls)]
        bad = sorted(set(args) - set(valid))
        if bad:
            raise NeurofxError(f"--model-arg autoencoder.{bad[0]}: unknown; valid: "
                               f"{', '.join(valid)}")
        args = dict(args)
        for key in ("lstm", "decoder"):
            if key in args:
                value = args[key] if isinstance(args[key], list | tuple) else [args[key]]
                if not value or not all(isinstance(v, int) and v >= 1 for v in value):
                    raise NeurofxError(f"--model-arg autoencoder.{key}={args[key]!r}: expected "
                                       f"a list of sizes >= 1, e.g. [64,32]")
                args[key] = tuple(value)
        return cls(**args)


def fifo_targets(norm: np.ndarray, n_vars: int, bars_out: int) -> np.ndarray:
    """Stacks (T - bars_out + 1, B, bars_out*n_vars) from normalised inputs norm (T, B, W):
    row s holds the newest bar (columns 0..n_vars-1) of steps t, t-1, .., t-bars_out+1 with
    t = s + bars_out - 1, newest first."""
    steps = norm.shape[0]
    newest = norm[..., :n_vars]
    return np.stack([np.concatenate([newest[t - k] for k in range(bars_out)], axis=-1)
                     for t in range(bars_out - 1, steps)])


@dataclass(frozen=True)
class BarBatch:
    """Decision-bar indices (seq_len, B) of B chronological windows."""

    rows: np.ndarray

    @property
    def samples(self) -> int:
        return int(self.rows.size)


class BarWindowSampler:
    """B windows of ``seq_len`` consecutive decision bars starting uniformly in
    ``[0, split - seq_len]``."""

    def __init__(self, split: int, seq_len: int, rng: np.random.Generator):
        self.split, self.seq_len, self.rng = split, seq_len, rng

    def batch(self, size: int) -> BarBatch:
        starts = self.rng.integers(0, self.split - self.seq_len + 1, size)
        return BarBatch(starts[None, :] + np.arange(self.seq_len)[:, None])


def _check(name: str, value, low) -> None:
    if value < low:
        raise NeurofxError(f"autoencoder study: {name}={value} must be >= {low}")


class AutoencoderStage(Stage):
    """The recall study on ``bars`` (OHLC + tick_volume frame, e.g. ``load_bars()``)."""

    name = ROLE
    train_keys = ("loss",)
    val_keys = ("loss",)
    plot_groups = {"autoencoder: rebuilt bars, normalised units (train: + KL)":
                   ["train_loss", "val_loss"]}
    optimizer_defaults: dict = {}  # the optimizer's own defaults and the learning rate

    def __init__(self, settings: Settings, bars):
        super().__init__(settings)
        self.options = opt = AutoencoderOptions.from_args(settings.model_args.get(ROLE, {}))
        seq_len, val_share = settings.seq_len, settings.val_share
        _check("iterations", settings.iterations, 1)
        _check("batch", settings.batch, 1)
        _check("bars_in", opt.bars_in, 1)
        _check("bars_out", opt.bars_out, opt.bars_in)
        _check("seq_len", seq_len, opt.bars_out)
        if not 0.0 < val_share < 1.0:
            raise NeurofxError(f"autoencoder study: val_share={val_share} must be in (0, 1)")
        feats = compute_features(bars)
        self.n_vars = feats.shape[1]
        ts = np.arange(first_valid_row(feats) + opt.bars_in, len(feats) + 1)
        self.split = split = int(len(ts) * (1.0 - val_share))
        if split < seq_len + 1 or len(ts) - split < seq_len:
            raise NeurofxError(f"autoencoder study: {len(ts)} decision bars are too few for "
                               f"seq_len={seq_len} in both the training and the held-out part "
                               f"(val_share={val_share}); load more bars or lower --seq-len")
        self.x_all = state_windows(feats, ts, opt.bars_in).astype(np.float32)
        windows = (len(ts) - split) // seq_len
        self.heldout_rows = split + np.arange(windows)[None, :] * seq_len + \
            np.arange(seq_len)[:, None]
        self.source = f"{len(bars)} bars {bars.index[0]} .. {bars.index[-1]}"
        self.net = RecurrentAutoencoder(self.n_vars, opt.bars_in, opt.bars_out, opt.lstm,
                                        opt.latent, opt.decoder, seed=settings.seed)
        self.model = Model(self.net, name=ROLE)
        self.optimizer = self.optimizer_for(self.model)
        meta = {"role": ROLE, "optimizer": settings.optimizer, "options": asdict(opt)}
        self.parts = {ROLE: Part(self.model, self.optimizer, AUTOENCODER_FILE, "loss", meta,
                                 keep_best=False)}
        self.skip = opt.bars_out - 1  # steps before the stack is full

    def sampler(self, rng: np.random.Generator) -> BarWindowSampler:
        return BarWindowSampler(self.split, self.settings.seq_len, rng)

    def train_batch(self, batch: BarBatch) -> dict[str, float]:
        model, opt = self.model, self.options
        model.zero_grad()
        out = model.forward(self.x_all[batch.rows])
        target = fifo_targets(self.net.last_normalised.numpy(), self.n_vars, opt.bars_out)
        width = batch.rows.shape[1] * opt.bars_out * self.n_vars
        tail = ops.slice_cols(ops.reshape(out, (1, out.numel)), self.skip * width, out.numel)
        loss = ops.mse_loss(tail, Tensor.from_numpy(target.reshape(1, -1), device=out.device))
        loss = with_extras(loss, model)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.item()}

    def reconstruct(self) -> tuple[np.ndarray, np.ndarray]:
        """Reconstructions and targets (steps, windows, bars_out, n_vars), float64, of the
        held-out windows (eval mode, each from a reset state); the model's running statistics
        and noise counters are restored afterwards."""
        model = self.model
        snap = files.snapshot_state(model)
        model.eval()
        model.reset_state()
        try:
            with no_grad():
                out = model.forward(self.x_all[self.heldout_rows])
                recon = out.numpy().astype(np.float64)[self.skip:]
                target = fifo_targets(self.net.last_normalised.numpy().astype(np.float64),
                                      self.n_vars, self.options.bars_out)
        finally:
            files.restore_state(model, snap)
            model.train()
        shape = (*target.shape[:2], self.options.bars_out, self.n_vars)
        return recon.reshape(shape), target.reshape(shape)

    def validate(self) -> dict[str, float]:
        recon, target = self.reconstruct()
        return {"loss": float(((recon - target) ** 2).mean())}

    def inputs(self) -> dict:
        digest = hashlib.sha256(self.x_all.tobytes()).hexdigest()[:16]
        return {"bars": {"source": self.source, "inputs_sha256": digest}}

    def describe_data(self) -> dict:
        return {"bars": self.source, "decision_bars": len(self.x_all),
                "train_bars": self.split, "heldout_windows": int(self.heldout_rows.shape[1])}

    def finish(self, summary) -> dict:
        """The lag study: writes ``autoencoder_lags.csv`` and ``autoencoder_study.json``
        (non-finite values JSON-safe) and returns the latter's content."""
        errors = self.lag_errors()
        out = self.settings.out_dir
        write_lags_csv(out / LAGS_CSV, errors, self.options.bars_in)
        report = self.lag_report(errors, summary)
        write_json_atomic(out / STUDY_JSON, report)
        return report

    def lag_errors(self) -> dict[str, np.ndarray]:
        """Per lag (bars_out,): ``mse``, ``mean_square``, ``persistence`` and ``ratio``
        (mse / mean square) on the held-out windows; ``states``: how many were scored."""
        recon, target = self.reconstruct()
        bars_in, bars_out = self.options.bars_in, self.options.bars_out
        mse = ((recon - target) ** 2).mean(axis=(0, 1, 3))
        mean_sq = (target ** 2).mean(axis=(0, 1, 3))
        oldest = target[:, :, bars_in - 1:bars_in, :]
        persist = np.where(np.arange(bars_out) < bars_in, 0.0,
                           ((oldest - target) ** 2).mean(axis=(0, 1, 3)))
        return {"mse": mse, "mean_square": mean_sq, "persistence": persist,
                "ratio": mse / np.maximum(mean_sq, 1e-12),
                "states": recon.shape[0] * recon.shape[1]}

    def lag_report(self, errors: dict, summary) -> dict:
        """``autoencoder_study.json``: settings, recall counts and the errors by lag."""
        opt, s = self.options, self.settings
        bars_in = opt.bars_in
        mse, persist, ratio = errors["mse"], errors["persistence"], errors["ratio"]
        recalled = ratio < opt.recall_ratio
        losses = [r["train_loss"] for r in summary.rows if "train_loss" in r]
        report = {
            "iterations": summary.iterations, "batch": s.batch, "seq_len": s.seq_len,
            "seed": s.seed, "bars_in": bars_in, "bars_out": opt.bars_out,
            "lstm": list(opt.lstm), "latent": opt.latent, "decoder": list(opt.decoder),
            "train_bars": int(self.split), "heldout_states": int(errors["states"]),
            "recall_ratio": opt.recall_ratio,
            "recalled_lags": int(recalled.sum()),
            "recalled_beyond_input": int(recalled[bars_in:].sum()),
            "mse_ratio_in_input": float(ratio[:bars_in].mean()),
            "mse_ratio_beyond_input": float(ratio[bars_in:].mean()),
            "beats_persistence_lags": int((mse[bars_in:] < persist[bars_in:]).sum()),
            "mse_by_lag": [float(v) for v in mse],
            "mean_square_by_lag": [float(v) for v in errors["mean_square"]],
            "persistence_by_lag": [float(v) for v in persist],
            "final_train_loss": float(np.mean(losses[-10:])),
        }
        return json_safe(report)  # e.g. a diverged loss: NaN -> null


def write_lags_csv(path, errors: dict, bars_in: int) -> None:
    """``autoencoder_lags.csv``: per lag its MSE, the two references, the ratio, in_input."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["lag_bars", "mse", "mean_square", "persistence_mse", "mse_ratio",
                     "in_input"])
    columns = (errors["mse"], errors["mean_square"], errors["persistence"], errors["ratio"])
    for k, cells in enumerate(zip(*columns, strict=True)):
        writer.writerow([k, *(f"{v:.6g}" for v in cells), int(k < bars_in)])
    write_text_atomic(path, buf.getvalue())
