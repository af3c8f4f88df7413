"""The one training loop of the study stages (encoder, actor, autoencoder): sampling, train
step, validation with best-model keeping, checkpoints with exact resume, early stopping,
progress bar, CSV log, Ctrl-C and the loss plot.

An *iteration* is one batch drawn by the stage's sampler (for the trajectory stages B
chronological sub-sequences, up to ``seq_len`` optimizer steps of B rows each). Validation
runs at iteration 0 (a fresh start), every ``val_every`` iterations and at the last one; the
stage restores its models' running statistics afterwards, so training is the same whatever the
validation schedule. Checkpoints are taken at batch boundaries (recurrent state is reset there
anyway) and hold everything a resumed run needs to continue bit for bit: weights, optimizer
state, running statistics, noise counters, the sampler's RNG state, the log, the best values
and the counters below.

Use: ``summary = Trainer(stage).run()``.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from neurofx.atomic import write_json_atomic
from neurofx.errors import NeurofxError
from neurofx.reports.study_charts import study_log_chart

from . import files
from .stage import Stage

# settings a checkpoint must have been made with to be resumed (extending iterations is allowed)
COMPAT_KEYS = ("stage", "batch", "seq_len", "seed", "optimizer", "lr", "opt_args", "model",
               "model_args", "val_share", "val_every", "val_batches")


class TrainingInterrupted(KeyboardInterrupt):
    """Raised after Ctrl-C once the checkpoint is written."""


@dataclass
class TrainState:
    """The counters of a run; all of it is checkpointed. ``wall_s``: wall time of the earlier
    sessions of a resumed run."""

    iteration: int = 0
    rows: list = field(default_factory=list)
    best: dict = field(default_factory=dict)  # part name -> best monitored value or None
    since_best: int = 0  # validations without improvement
    samples: int = 0
    wall_s: float = 0.0
    train_s: float = 0.0
    stopped_early: bool = False

    @classmethod
    def from_checkpoint(cls, doc: dict) -> TrainState:
        return cls(int(doc["iteration"]), list(doc["log"]), doc["best"], int(doc["since_best"]),
                   int(doc["samples"]), float(doc["wall_s"]), float(doc["train_s"]))


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
    report: dict = field(default_factory=dict)  # Stage.finish (the autoencoder's lag study)

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.train_s if self.train_s > 0 else math.nan


class StopRequest:
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


def _fmt(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


class ProgressBar:
    """tqdm bar on stderr with the last training losses and validation metrics; or nothing."""

    def __init__(self, stage: Stage, total: int, initial: int, enabled: bool):
        self.val_keys = stage.val_keys
        self.bar = None
        if enabled:
            from tqdm import tqdm  # only when shown: tqdm is slow to import

            self.bar = tqdm(total=total, initial=initial, desc=f"study {stage.name}", unit="it",
                            file=sys.stderr, dynamic_ncols=True, leave=True,
                            mininterval=0.5 if sys.stderr.isatty() else 30)

    def show(self, losses: dict, rows: list[dict]) -> None:
        if self.bar is None:
            return
        last_val = next((r for r in reversed(rows)
                         if any(f"val_{k}" in r for k in self.val_keys)), {})
        self.bar.set_postfix_str(" ".join(
            [f"{k} {_fmt(v)}" for k, v in losses.items()]
            + [f"val_{k} {_fmt(last_val.get(f'val_{k}'))}" for k in self.val_keys]),
            refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Trainer:
    """Trains ``stage`` as its settings say. ``on_iteration(it)`` is called after every
    iteration (tests use it to send Ctrl-C)."""

    def __init__(self, stage: Stage, on_iteration=None):
        self.stage, self.settings = stage, stage.settings
        self.on_iteration = on_iteration
        self.out = self.settings.out_dir
        self.monitors = {n: p.monitor for n, p in stage.parts.items() if p.monitor}
        self.rng = np.random.default_rng(self.settings.seed)
        self.sampler = stage.sampler(self.rng)
        self.settings_doc = {**self.settings.record(), **stage.inputs()}
        self.state = TrainState(best={n: None for n in self.monitors})
        self._t0 = time.perf_counter()
        self._prepared = False
        self._last = self.settings.iterations  # the last iteration run() will reach

    # ---- the run ------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Refuse to overwrite a checkpointed run silently; ``fresh`` clears the stage's
        checkpoint. Called by :meth:`run`; call it first to check several runs before any
        trains (the optimizer comparison)."""
        if self._prepared:
            return
        s = self.settings
        name = self.stage.name
        ckpt = files.checkpoint_json(self.out, name)
        if ckpt.exists() and not s.resume:
            if not s.fresh:
                article = "an" if name[:1] in tuple("aeiou") else "a"
                raise NeurofxError(f"{ckpt}: run {s.run!r} already has {article} {name} "
                                   f"checkpoint; add --resume to continue it, --fresh to start "
                                   f"over, or choose another --run")
            files.remove_checkpoint(self.out, name)
        self._prepared = True

    def run(self) -> Summary:
        """Train to ``settings.iterations`` (or an early stop); returns the summary. Raises
        :class:`TrainingInterrupted` after a first Ctrl-C, once the checkpoint is written."""
        self.prepare()
        s = self.settings
        self.out.mkdir(parents=True, exist_ok=True)
        if s.resume:
            self._restore()
        write_json_atomic(self.out / f"study_{self.stage.name}_config.json",
                          {"command": " ".join(sys.argv), **self.stage.describe_run()})
        self._t0 = time.perf_counter()
        if self.state.iteration == 0:
            self._first_row()
        # a stage with nothing to train (a model fitted in closed form) runs one iteration
        self._last = iterations = s.iterations if self.stage.trainable else min(s.iterations, 1)
        with StopRequest() as stop, ProgressBar(self.stage, iterations, self.state.iteration,
                                                s.progress) as bar:
            while self.state.iteration < iterations:
                self._step(bar)
                if self._plateau():
                    break
                if stop.requested:
                    self._interrupt(bar)
                if s.checkpoint_every and self.state.iteration % s.checkpoint_every == 0:
                    self.checkpoint()
        return self._finish()

    def _first_row(self) -> None:
        row = {"iteration": 0, "samples": 0, "lr": self.stage.lr(), "wall_s": 0.0,
               "optimizer_state_bytes": self.stage.state_bytes()}
        self._evaluate(row)
        self.state.rows.append(row)

    def _step(self, bar: ProgressBar) -> None:
        """One iteration: a batch, its training, validation when due, the log row."""
        st, s, stage = self.state, self.settings, self.stage
        it = st.iteration + 1
        batch = self.sampler.batch(s.batch)
        tb = time.perf_counter()
        losses = stage.train_batch(batch)
        st.train_s += time.perf_counter() - tb
        st.samples += batch.samples
        row = {"iteration": it, "samples": st.samples,
               **{f"train_{k}": v for k, v in losses.items()}, "lr": stage.lr()}
        if it % s.val_every == 0 or it == self._last:
            st.since_best = 0 if self._evaluate(row) else st.since_best + 1
        row.update(wall_s=self.wall(), optimizer_state_bytes=stage.state_bytes())
        st.rows.append(row)
        st.iteration = it
        bar.show(losses, st.rows)
        if self.on_iteration is not None:
            self.on_iteration(it)

    def _evaluate(self, row: dict) -> bool:
        """Validate into ``row`` and keep the best weights; True if a monitored metric
        improved."""
        if not self.stage.has_validation:
            return False
        val = self.stage.validate()
        row.update({f"val_{k}": v for k, v in val.items()})
        improved = False
        for name, metric in self.monitors.items():
            v = val.get(metric, math.nan)
            best = self.state.best[name]
            if math.isfinite(v) and (best is None or v < best):
                self.state.best[name] = v
                part = self.stage.parts[name]
                if part.keep_best:
                    part.model.save(files.best_model_path(self.out, self.stage.name, name),
                                    extra={**part.meta, "iteration": row["iteration"],
                                           f"val_{metric}": v})
                improved = True
        return improved

    def _plateau(self) -> bool:
        """Early stop: ``early_stop`` validations in a row without improvement."""
        s, st = self.settings, self.state
        if not (s.early_stop and self.monitors and st.since_best >= s.early_stop):
            return False
        st.stopped_early = True
        print(f"\nneurofx study: early stop at iteration {st.iteration}: no validation "
              f"improvement in {s.early_stop} evaluations", file=sys.stderr)
        return True

    def _interrupt(self, bar: ProgressBar) -> None:
        self.checkpoint()
        self.publish_best()
        self.plot()
        bar.close()
        print(f"neurofx study: checkpoint saved at iteration {self.state.iteration}; continue "
              f"with --resume", file=sys.stderr)
        raise TrainingInterrupted

    def _finish(self) -> Summary:
        st, stage = self.state, self.stage
        self.checkpoint()  # the end state: '--resume --iterations M' extends the run
        self.plot()
        self.publish_best()
        for name, part in stage.parts.items():
            if part.output and (part.monitor is None or not part.keep_best
                                or st.best.get(name) is None):
                part.model.save(self.out / part.output,
                                extra={**part.meta, "iteration": st.iteration})
        final = {k: st.rows[-1].get(f"val_{k}") for k in stage.val_keys}
        summary = Summary(stage.name, str(self.out), st.iteration, st.samples, self.wall(),
                          st.train_s, stage.state_bytes(), final, dict(st.best),
                          st.stopped_early, st.rows)
        summary.report = stage.finish(summary)
        return summary

    # ---- files --------------------------------------------------------------------------------
    def publish_best(self) -> None:
        """Copy each part's best weights so far to its output file (``encoder.npz``, ...):
        a run that fails part-way leaves no output that looks trained."""
        for name, part in self.stage.parts.items():
            best = files.best_model_path(self.out, self.stage.name, name)
            if part.output and part.keep_best and self.state.best.get(name) is not None \
                    and best.is_file():
                files.publish(best, self.out / part.output)

    def wall(self) -> float:
        return self.state.wall_s + time.perf_counter() - self._t0

    def checkpoint(self) -> None:
        """Checkpoint at the current iteration and rewrite the CSV log."""
        st, stage = self.state, self.stage
        files.save_checkpoint(
            self.out, stage.name, st.iteration,
            {n: (p.model, p.optimizer) for n, p in stage.parts.items()},
            {"rng": self.rng.bit_generator.state, "log": st.rows, "best": st.best,
             "since_best": st.since_best, "samples": st.samples, "wall_s": self.wall(),
             "train_s": st.train_s, "settings": self.settings_doc,
             "target_scalers": {n: p.scaler.to_dict() for n, p in stage.parts.items()
                                if p.scaler is not None}})
        files.write_log(self.out / f"study_{stage.name}.csv", stage.columns(), st.rows)

    def plot(self):
        """``loss_<stage>.png``: one panel per plot group of the stage."""
        stage = self.stage
        return study_log_chart(self.out / f"loss_{stage.name}.png", self.state.rows,
                               stage.plot_groups,
                               f"neurofx study {stage.name}: {self.settings.optimizer}")

    def _restore(self) -> None:
        """Continue from the stage's checkpoint, made with the same settings and data."""
        doc = files.read_checkpoint(self.out, self.stage.name)
        for key in COMPAT_KEYS + tuple(self.stage.inputs()):
            have, want = doc["settings"].get(key), self.settings_doc.get(key)
            if json.loads(json.dumps(have)) != json.loads(json.dumps(want)):
                raise NeurofxError(f"{doc['_path']}: the checkpoint was made with {key} = "
                                   f"{have!r}, not {want!r}; resume with the same settings")
        files.check_scalers(doc, self.stage.parts, self.stage.source)
        for name, part in self.stage.parts.items():
            files.load_part(self.out, doc, name, part.model, part.optimizer)
        self.rng.bit_generator.state = doc["rng"]
        self.state = TrainState.from_checkpoint(doc)
