"""The training loop shared by the study stages: progress bar, CSV log, validation, best-model
keeping, checkpoints, exact resume, early stopping and Ctrl-C.

An *iteration* is one batch of B chronological sub-sequences (up to ``seq_len`` optimizer
steps of B rows each). Validation runs at iteration 0 (a fresh start), every ``val_every``
iterations and at the last one, on fixed windows of the held-out trajectories; it restores
the models' running statistics afterwards, so training is the same whatever the validation
schedule. Checkpoints are taken at batch boundaries (recurrent state is reset there anyway).
"""

from __future__ import annotations

import inspect
import json
import math
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from neurofx.config import write_json_atomic
from neurofx.errors import NeurofxError
from neurofx.nn import ops
from neurofx.nn.optim import make_optimizer
from neurofx.nn.tensor import Tensor

from . import files
from .data import Batch, Dataset, WindowSampler
from .targets import TargetScaler

# the seed's Adam settings (spec 5): applied when the chosen optimizer takes the parameter
SEED_HYPER = {"betas": (0.9, 0.99), "weight_decay": 0.0}
COMPAT_KEYS = ("stage", "batch", "seq_len", "seed", "optimizer", "lr", "opt_args", "model",
               "model_args", "val_share", "val_every", "val_batches")


@dataclass(frozen=True)
class Settings:
    """Everything a study run depends on (recorded in ``study_<stage>_config.json``)."""

    stage: str
    store: str
    run: str
    runs_root: str = "runs"
    out: str = ""  # output folder; empty: <runs_root>/<run>
    iterations: int = 200
    batch: int = 16
    seq_len: int = 100
    optimizer: str = "adam"
    lr: float = 3e-4
    opt_args: dict = field(default_factory=dict)
    val_share: float = 0.2
    val_every: int = 10
    val_batches: int = 2
    checkpoint_every: int = 50
    early_stop: int = 0
    seed: int = 0
    model: str = "tpm"
    model_args: dict = field(default_factory=dict)  # role -> {override: value}
    resume: bool = False
    fresh: bool = False
    progress: bool = True

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path(self.runs_root) / self.run

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_root) / self.run

    def check(self) -> None:
        for name in ("iterations", "batch", "seq_len", "val_every", "val_batches"):
            if getattr(self, name) < 1:
                raise NeurofxError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be "
                                   ">= 1")
        for name in ("checkpoint_every", "early_stop"):
            if getattr(self, name) < 0:
                raise NeurofxError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be "
                                   ">= 0 (0 = off)")
        if self.resume and self.fresh:
            raise NeurofxError("--resume and --fresh exclude each other; pick one")

    def record(self) -> dict:
        d = asdict(self)
        d.pop("progress")
        return d


def build_optimizer(name: str, store, lr: float, opt_args: dict):
    """``make_optimizer`` with lr, the seed's betas/weight decay where the optimizer takes them,
    then the user's ``opt_args``."""
    probe = make_optimizer(name, store)  # unknown names raise OptimizerError here
    accepted = inspect.signature(type(probe).__init__).parameters
    hyper = {"lr": lr, **{k: v for k, v in SEED_HYPER.items() if k in accepted}, **opt_args}
    return make_optimizer(name, store, **hyper)


def masked_mse(out: Tensor, target: np.ndarray, mask: np.ndarray) -> Tensor:
    """Mean squared error over the rows with ``mask == 1`` (out and target are (..., W), mask
    out.shape[:-1])."""
    active = float(mask.sum())
    target = np.asarray(target, np.float32)
    if active == mask.size:
        return ops.mse_loss(out, Tensor.from_numpy(target, device=out.device))
    full = np.broadcast_to(mask[..., None], target.shape).astype(np.float32)
    masked = ops.mul(out, Tensor.from_numpy(full, device=out.device))
    loss = ops.mse_loss(masked, Tensor.from_numpy(target * full, device=out.device))
    return ops.scale(loss, mask.size / active)


def set_loss(model, role: str, name: str) -> str:
    """Give ``model`` the training loss of its registry entry (``neurofx.agents.tpm.LOSSES`` key
    ``"<role>:<name>"``, e.g. FreDF for the TPM models); others keep MSE. Returns its label."""
    from neurofx.agents.tpm import LOSSES

    fn = LOSSES.get(f"{role}:{name}")
    if fn is not None:
        model.loss_fn = fn
    return loss_label(model)


def loss_label(model) -> str:
    """``"mse"`` or e.g. ``"fredf_loss(n_vars=9, horizon=24, alpha=0.7, time_major=True)"``."""
    fn = model.loss_fn
    if fn is ops.mse_loss:
        return "mse"
    if isinstance(fn, partial):
        args = ", ".join(f"{k}={v}" for k, v in fn.keywords.items())
        return f"{fn.func.__name__}({args})"
    return getattr(fn, "__name__", type(fn).__name__)


def model_loss(model, out: Tensor, target: np.ndarray, mask: np.ndarray) -> Tensor:
    """``model.loss_fn`` of ``out`` against ``target`` over the rows with ``mask == 1``
    (:func:`masked_mse` for MSE, bit-identical to earlier runs; ``masked_loss`` otherwise)."""
    if model.loss_fn is ops.mse_loss:
        return masked_mse(out, target, mask)
    from neurofx.nn.losses import masked_loss

    tgt = Tensor.from_numpy(np.asarray(target, np.float32), device=out.device)
    return masked_loss(model.loss_fn, out, tgt, mask)


def with_extras(loss: Tensor, model) -> Tensor:
    for extra in model.net.extra_losses():
        loss = ops.add(loss, extra)
    return loss


@dataclass
class Part:
    """One model of a stage. ``output``: file written in the output folder (None: an input that
    is only checkpointed for its running state); ``monitor``: the validation metric picking the
    best weights (None: the last weights are kept); ``scaler``: the standardisation of its
    targets, fitted on the training trajectories (recorded in checkpoints and checked on
    resume)."""

    model: object
    optimizer: object | None
    output: str | None
    monitor: str | None
    meta: dict
    scaler: TargetScaler | None = None


class Stage:
    """A study stage: its parts, one training batch and one validation pass."""

    name: str = ""
    train_keys: tuple[str, ...] = ()
    val_keys: tuple[str, ...] = ()
    plot_groups: dict[str, list[str]] = {}

    def __init__(self, settings: Settings, data: Dataset):
        self.settings, self.data = settings, data
        self.parts: dict[str, Part] = {}
        self.val_windows: list[Batch] = []

    def train_batch(self, batch: Batch) -> dict[str, float]:
        raise NotImplementedError

    def validate(self) -> dict[str, float]:
        raise NotImplementedError

    def state_bytes(self) -> int:
        return sum(p.optimizer.state_bytes() for p in self.parts.values() if p.optimizer)

    def lr(self) -> float:
        return next(p.optimizer.lr for p in self.parts.values() if p.optimizer)

    def describe_run(self) -> dict:
        """Config snapshot: settings, resolved hyper-parameters, architectures, split."""
        d = self.data
        return {
            "settings": self.settings.record(),
            "parts": {n: {"architecture": p.model.describe(),
                          "parameters": p.model.num_parameters,
                          "loss": loss_label(p.model) if p.optimizer else None,
                          "sequence_training": p.model.supports_sequences,
                          "optimizer": None if p.optimizer is None else {
                              "class": type(p.optimizer).__name__,
                              "hyper": dict(p.optimizer.hyper)}}
                      for n, p in self.parts.items()},
            "store": d.path, "train_files": [d.files[i] for i in d.train],
            "val_files": [d.files[i] for i in d.val],
        }

    def columns(self) -> list[str]:
        return (["iteration", "samples"] + [f"train_{k}" for k in self.train_keys]
                + [f"val_{k}" for k in self.val_keys] + ["lr", "wall_s", "optimizer_state_bytes"])


class _StopFlag:
    """First Ctrl-C: finish the batch, checkpoint, stop. Second: abort at once."""

    def __init__(self):
        self.requested = False
        self._old = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nneurofx study: stopping after this batch to save a checkpoint "
              "(Ctrl-C again to abort)", file=sys.stderr)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


class TrainingInterrupted(KeyboardInterrupt):
    """Raised after Ctrl-C once the checkpoint is written."""


@dataclass
class Summary:
    stage: str
    out_dir: str
    iterations: int
    samples: int
    wall_s: float
    train_s: float
    state_bytes: int
    final: dict
    best: dict
    stopped_early: bool
    rows: list

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.train_s if self.train_s > 0 else math.nan


def _fmt(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def run_stage(stage: Stage, on_iteration=None) -> Summary:
    """Train ``stage`` as its settings say; returns the summary. ``on_iteration(it)`` is called
    after every iteration (tests use it to send Ctrl-C)."""
    s = stage.settings
    out = s.out_dir
    out.mkdir(parents=True, exist_ok=True)
    columns = stage.columns()
    rng = np.random.default_rng(s.seed)
    sampler = WindowSampler(stage.data.trajs, stage.data.train, s.seq_len, rng)
    ckpt_parts = {n: (p.model, p.optimizer) for n, p in stage.parts.items()}
    monitors = {n: p.monitor for n, p in stage.parts.items() if p.monitor}
    settings_doc = s.record()
    if s.resume:
        doc = files.read_checkpoint(out, stage.name)
        for key in COMPAT_KEYS + ("store_files",):
            have = doc["settings"].get(key)
            want = settings_doc.get(key) if key != "store_files" else stage.data.files
            if json.loads(json.dumps(have)) != json.loads(json.dumps(want)):
                raise NeurofxError(f"{doc['_path']}: the checkpoint was made with {key} = "
                                   f"{have!r}, not {want!r}; resume with the same settings")
        files.check_scalers(doc, stage.parts, stage.data.path)
        for name, (model, opt) in ckpt_parts.items():
            files.load_part(out, doc, name, model, opt)
        rng.bit_generator.state = doc["rng"]
        start, rows = int(doc["iteration"]), list(doc["log"])
        best, since_best = doc["best"], int(doc["since_best"])
        samples, wall0, train_s = int(doc["samples"]), float(doc["wall_s"]), float(doc["train_s"])
    else:
        start, rows, since_best, samples, wall0, train_s = 0, [], 0, 0, 0.0, 0.0
        best = {n: None for n in monitors}
    settings_doc["store_files"] = stage.data.files
    write_json_atomic(out / f"study_{stage.name}_config.json",
                      {"command": " ".join(sys.argv), **stage.describe_run()})
    t0 = time.perf_counter()
    stopped_early = False

    def wall() -> float:
        return wall0 + time.perf_counter() - t0

    def checkpoint(it: int) -> None:
        files.save_checkpoint(out, stage.name, it, ckpt_parts, {
            "rng": rng.bit_generator.state, "log": rows, "best": best, "since_best": since_best,
            "samples": samples, "wall_s": wall(), "train_s": train_s, "settings": settings_doc,
            "target_scalers": {n: p.scaler.to_dict() for n, p in stage.parts.items()
                               if p.scaler is not None}})
        files.write_log(out / f"study_{stage.name}.csv", columns, rows)

    def evaluate(it: int, row: dict) -> bool:
        """Validate, keep the best weights; True if any monitored metric improved."""
        if not stage.val_windows:
            return False
        val = stage.validate()
        row.update({f"val_{k}": v for k, v in val.items()})
        improved = False
        for name, metric in monitors.items():
            v = val.get(metric, math.nan)
            if math.isfinite(v) and (best[name] is None or v < best[name]):
                best[name] = v
                part = stage.parts[name]
                part.model.save(out / part.output, extra={
                    **part.meta, "iteration": it, f"val_{metric}": v})
                improved = True
        return improved

    if start == 0:
        row = {"iteration": 0, "samples": 0, "lr": stage.lr(), "wall_s": 0.0,
               "optimizer_state_bytes": stage.state_bytes()}
        evaluate(0, row)
        rows.append(row)
    bar = None
    if s.progress:
        from tqdm import tqdm

        bar = tqdm(total=s.iterations, initial=start, desc=f"study {stage.name}", unit="it",
                   file=sys.stderr, dynamic_ncols=True, leave=True,
                   mininterval=0.5 if sys.stderr.isatty() else 30)
    it = start
    with _StopFlag() as stop:
        try:
            for it in range(start + 1, s.iterations + 1):
                batch = sampler.batch(s.batch)
                tb = time.perf_counter()
                losses = stage.train_batch(batch)
                train_s += time.perf_counter() - tb
                samples += batch.samples
                row = {"iteration": it, "samples": samples,
                       **{f"train_{k}": v for k, v in losses.items()}, "lr": stage.lr()}
                if it % s.val_every == 0 or it == s.iterations:
                    if evaluate(it, row):
                        since_best = 0
                    else:
                        since_best += 1
                row.update(wall_s=wall(), optimizer_state_bytes=stage.state_bytes())
                rows.append(row)
                if bar is not None:
                    last_val = next((r for r in reversed(rows) if any(
                        f"val_{k}" in r for k in stage.val_keys)), {})
                    bar.set_postfix_str(" ".join(
                        [f"{k} {_fmt(v)}" for k, v in losses.items()]
                        + [f"val_{k} {_fmt(last_val.get(f'val_{k}'))}" for k in stage.val_keys]),
                        refresh=False)
                    bar.update(1)
                if on_iteration is not None:
                    on_iteration(it)
                if s.early_stop and monitors and since_best >= s.early_stop:
                    stopped_early = True
                    print(f"\nneurofx study: early stop at iteration {it}: no validation "
                          f"improvement in {s.early_stop} evaluations", file=sys.stderr)
                    break
                if stop.requested:
                    checkpoint(it)
                    plot(stage, rows)
                    if bar is not None:
                        bar.close()
                    print(f"neurofx study: checkpoint saved at iteration {it}; continue with "
                          f"--resume", file=sys.stderr)
                    raise TrainingInterrupted
                if s.checkpoint_every and it % s.checkpoint_every == 0:
                    checkpoint(it)
        finally:
            if bar is not None:
                bar.close()
    checkpoint(it)  # the end state: '--resume --iterations M' extends the run
    plot(stage, rows)
    for name, part in stage.parts.items():
        if part.output and (part.monitor is None or best.get(name) is None):
            part.model.save(out / part.output, extra={**part.meta, "iteration": it})
    final = {k: rows[-1].get(f"val_{k}") for k in stage.val_keys}
    return Summary(stage.name, str(out), it, samples, wall(), train_s, stage.state_bytes(),
                   final, dict(best), stopped_early, rows)


def plot(stage: Stage, rows: list[dict]) -> Path:
    """``loss_<stage>.png``: one panel per plot group of the stage."""
    return files.plot_curves(stage.settings.out_dir / f"loss_{stage.name}.png",
                             loss_panels(rows, stage.plot_groups),
                             f"neurofx study {stage.name}: {stage.settings.optimizer}")


def loss_panels(rows: list[dict], groups: dict[str, list[str]]):
    """Panels for :func:`files.plot_curves` from the log rows: group title -> metric keys."""
    it = np.array([r["iteration"] for r in rows], dtype=np.float64)
    panels = []
    for title, keys in groups.items():
        curves = []
        for key in keys:
            y = np.array([r.get(key, math.nan) if r.get(key) is not None else math.nan
                          for r in rows], dtype=np.float64)
            curves.append((key, it, y, "o-" if key.startswith("val_") else "-"))
        panels.append((title, curves))
    return panels
