"""What the :class:`~neurofx.study.trainer.Trainer` trains: a *stage* owns its models
(:class:`Part`), draws its training batches, trains one batch and validates.

:class:`Stage` is the interface (the autoencoder study implements it directly);
:class:`TrajectoryStage` is the base of the stages trained on a trajectory store (encoder,
actor): the seed's sub-sequence sampler and fixed validation windows of held-out trajectories.
Every stage builds its optimizers with :func:`build_optimizer` through :meth:`Stage.optimizer_for`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np

from neurofx.nn.optim import make_optimizer

from .data import Dataset, WindowSampler, validation_batches
from .losses import loss_label
from .settings import Settings
from .targets import TargetScaler

# the seed's Adam settings (spec 5): applied when the chosen optimizer takes the parameter
SEED_HYPER = {"betas": (0.9, 0.99), "weight_decay": 0.0}


def build_optimizer(name: str, store, lr: float, opt_args: dict, defaults: dict = SEED_HYPER):
    """``make_optimizer`` with lr, ``defaults`` where the optimizer takes them (the seed's
    betas/weight decay unless a stage says otherwise), then the user's ``opt_args``."""
    probe = make_optimizer(name, store)  # unknown names raise OptimizerError here
    accepted = inspect.signature(type(probe).__init__).parameters
    hyper = {"lr": lr, **{k: v for k, v in defaults.items() if k in accepted}, **opt_args}
    return make_optimizer(name, store, **hyper)


@dataclass
class Part:
    """One model of a stage. ``output``: file written in the output folder (None: an input that
    is only checkpointed for its running state); ``monitor``: the validation metric that
    decides improvement (early stopping) and, with ``keep_best``, which weights ``output`` holds
    (None: the last weights are kept); ``scaler``: the standardisation of its targets, fitted
    on the training data (recorded in checkpoints and checked on resume)."""

    model: object
    optimizer: object | None
    output: str | None
    monitor: str | None
    meta: dict
    scaler: TargetScaler | None = None
    keep_best: bool = True


class Stage:
    """A study stage: its parts, its batches, one training batch and one validation pass.

    A subclass sets ``parts`` and implements :meth:`sampler`, :meth:`train_batch` and
    :meth:`validate`; :meth:`inputs`, :meth:`describe_data` and :meth:`finish` are optional.
    """

    name: str = ""
    train_keys: tuple[str, ...] = ()
    val_keys: tuple[str, ...] = ()
    plot_groups: dict[str, list[str]] = {}
    # hyper-parameters given to every optimizer that takes them, before the user's opt_args
    optimizer_defaults: dict = SEED_HYPER

    def __init__(self, settings: Settings):
        self.settings = settings
        self.parts: dict[str, Part] = {}
        self.source = ""  # the training data, as named in error messages

    def optimizer_for(self, model):
        s = self.settings
        return build_optimizer(s.optimizer, model.store, s.lr, s.opt_args,
                               self.optimizer_defaults)

    def sampler(self, rng: np.random.Generator):
        """An object whose ``batch(size)`` draws one training batch with ``rng`` (the only
        random draws of training; the batch has a ``samples`` count)."""
        raise NotImplementedError

    def train_batch(self, batch) -> dict[str, float]:
        raise NotImplementedError

    @property
    def has_validation(self) -> bool:
        return True

    @property
    def trainable(self) -> bool:
        """False when no part has a parameter to train (the trainer then runs one iteration,
        which only reports the loss)."""
        return any(p.optimizer is not None and p.model.num_parameters
                   for p in self.parts.values())

    def validate(self) -> dict[str, float]:
        """Validation metrics; the models' running state is as before afterwards."""
        raise NotImplementedError

    def inputs(self) -> dict:
        """What identifies the training data; recorded with the settings and checked on
        resume."""
        return {}

    def describe_data(self) -> dict:
        """The data part of ``study_<stage>_config.json``."""
        return {}

    def finish(self, summary) -> dict:
        """Called once training ended (not on Ctrl-C); returns ``Summary.report``."""
        return {}

    def state_bytes(self) -> int:
        return sum(p.optimizer.state_bytes() for p in self.parts.values() if p.optimizer)

    def lr(self) -> float:
        return next(p.optimizer.lr for p in self.parts.values() if p.optimizer)

    def describe_run(self) -> dict:
        """Config snapshot: settings, resolved hyper-parameters, architectures, data."""
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
            **self.describe_data(),
        }

    def columns(self) -> list[str]:
        return (["iteration", "samples"] + [f"train_{k}" for k in self.train_keys]
                + [f"val_{k}" for k in self.val_keys] + ["lr", "wall_s", "optimizer_state_bytes"])


class TrajectoryStage(Stage):
    """A stage trained on the trajectories of a store: batches of the seed's chronological
    sub-sequences (:class:`~.data.WindowSampler`) of the training trajectories, validation on
    fixed windows of the held-out ones (``val_windows``)."""

    def __init__(self, settings: Settings, data: Dataset):
        super().__init__(settings)
        self.data = data
        self.source = data.path
        self.val_windows = validation_batches(data, data.val, settings.seq_len, settings.batch,
                                              settings.val_batches, settings.seed)

    def sampler(self, rng: np.random.Generator) -> WindowSampler:
        return WindowSampler(self.data.trajs, self.data.train, self.settings.seq_len, rng)

    @property
    def has_validation(self) -> bool:
        return bool(self.val_windows)

    def inputs(self) -> dict:
        return {"store_files": self.data.files}

    def describe_data(self) -> dict:
        d = self.data
        return {"store": d.path, "train_files": [d.files[i] for i in d.train],
                "val_files": [d.files[i] for i in d.val]}
