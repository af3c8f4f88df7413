"""`neurofx study encoder`: the seed's StudyEncoder (spec 5.2) on chronological sub-sequences.

Per batch: the model's recurrent state is reset, then step j of every sub-sequence forms one
forward of B rows (the state window of 1080 values), the target is the standardised 24-bar
forecast (:mod:`neurofx.study.targets`), and one optimizer step follows (the seed updates after
every sample; here after every B samples, one per sub-sequence). A model that takes sequences
(``Model.supports_sequences``: the TPM encoder) gets the whole (T, B, 1080) batch in one
forward instead, from a zero state, and one optimizer step per batch with the gradient of the
whole sub-sequences (full backprop through time, not the seed's one-step truncation). The
loss is the model's own (``set_loss``: FreDF for ``tpm``, MSE for ``baseline``) over the
active rows. The output ``encoder.npz`` holds the best weights on the validation trajectories
and the target scaler.
"""

from __future__ import annotations

import numpy as np

from neurofx import agents
from neurofx.nn.model import Model
from neurofx.nn.serialize import ModelFileError
from neurofx.nn.tensor import no_grad
from neurofx.schema import ACCOUNT_RECORD_FIELDS, FORECAST_BARS, FORECAST_SIZE

from . import files
from .data import Batch, Dataset
from .losses import model_loss, set_loss, with_extras
from .settings import Settings
from .stage import Part, TrajectoryStage
from .targets import TargetScaler, scaled_encoder_targets

ENCODER_FILE = "encoder.npz"
ROLE = "encoder"


def gather(arrays: list[np.ndarray], batch: Batch, j: int, offset: int = 0) -> np.ndarray:
    """Rows ``arrays[traj[r]][index[j, r] - offset]`` of step j of the batch, float32 (B, W)."""
    return np.stack([arrays[t][i - offset] for t, i in zip(batch.traj, batch.index[j],
                                                           strict=True)]).astype(np.float32)


def gather_sequence(arrays: list[np.ndarray], batch: Batch) -> np.ndarray:
    """All steps of the batch, float32 (S, B, W): ``[j, r] = arrays[traj[r]][index[j, r]]``."""
    return np.stack([arrays[t][batch.index[:, r]] for r, t in enumerate(batch.traj)],
                    axis=1).astype(np.float32)


def training_rows(data: Dataset, states, targets) -> tuple[np.ndarray, np.ndarray]:
    """Each decision bar of the training trajectories once, in time order: (raw windows
    (N, 1080), standardised targets (N, 216)). Passes over the same bars share their states,
    so a store of 16 passes of 2023 gives 2023's bars once (the first pass that has a bar
    supplies it)."""
    col = ACCOUNT_RECORD_FIELDS.index("time_s")
    first: dict[float, tuple[int, int]] = {}
    for t in data.train:
        times = data.trajs[t].accounts[:, col]
        for i in range(data.trajs[t].steps - FORECAST_BARS):
            first.setdefault(float(times[i]), (t, i))
    order = [first[k] for k in sorted(first)]
    traj = np.array([t for t, _ in order], dtype=np.int64)
    step = np.array([i for _, i in order], dtype=np.int64)
    x = np.empty((len(order), np.asarray(states[traj[0]][:1]).shape[1]), np.float32)
    z = np.empty((len(order), FORECAST_SIZE), np.float32)
    for t in np.unique(traj):
        rows = np.flatnonzero(traj == t)
        x[rows] = np.asarray(states[t][step[rows]])
        z[rows] = np.asarray(targets[t][step[rows]])
    return x, z


class EncoderStage(TrajectoryStage):
    name = "encoder"
    train_keys = ("loss",)
    val_keys = ("loss",)
    plot_groups = {"encoder: 24-bar forecast, standardised units": ["train_loss", "val_loss"]}

    def __init__(self, settings: Settings, data: Dataset):
        super().__init__(settings, data)
        overrides = settings.model_args.get(ROLE, {})
        self.model = agents.build(ROLE, settings.model, **overrides)
        self.loss_name = set_loss(self.model, ROLE, settings.model)
        self.optimizer = self.optimizer_for(self.model)
        self.scaler = TargetScaler.fit([data.trajs[i] for i in data.train])
        self.states = [t.states for t in data.trajs]
        scaled: dict = {}  # one standardised feature matrix per store (version 2)
        self.targets = [scaled_encoder_targets(t.states, self.scaler, cache=scaled)
                        for t in data.trajs]
        meta = {"role": ROLE, "model": agents.resolve(ROLE, settings.model), "overrides": overrides,
                "optimizer": settings.optimizer, "target_scaler": self.scaler.to_dict(),
                "n_forecast": FORECAST_BARS, "loss": self.loss_name}
        fit_linear = getattr(self.model.net, "fit_linear", None)
        if fit_linear is not None:  # the skip encoder: its linear path in closed form
            states, targets = training_rows(data, self.states, self.targets)
            fit = fit_linear(states, targets, *self.scaler.vectors(FORECAST_SIZE))
            meta["linear_fit"] = {"rows": len(states),
                                  "penalty_median": float(np.median(fit.penalty))}
        self.parts = {ROLE: Part(self.model, self.optimizer, ENCODER_FILE, "loss", meta,
                                 self.scaler)}

    def train_batch(self, batch: Batch) -> dict[str, float]:
        model, opt = self.model, self.optimizer
        model.train()
        model.reset_state()
        if not model.num_parameters:  # fitted in closed form (skip encoder): nothing to step
            return {"loss": forecast_mse(model, self.states, self.targets, [batch])}
        if model.supports_sequences:
            model.zero_grad()
            out = model.forward(gather_sequence(self.states, batch))
            loss = with_extras(model_loss(model, out, gather_sequence(self.targets, batch),
                                          batch.mask), model)
            loss.backward()
            opt.step()
            return {"loss": loss.item()}
        total = 0.0
        for j in range(batch.steps):
            model.zero_grad()
            out = model.forward(gather(self.states, batch, j))
            loss = with_extras(model_loss(model, out, gather(self.targets, batch, j),
                                          batch.mask[j]), model)
            loss.backward()
            opt.step()
            total += loss.item()
        return {"loss": total / batch.steps}

    def validate(self) -> dict[str, float]:
        return {"loss": forecast_mse(self.model, self.states, self.targets, self.val_windows)}


def forecast_mse(model: Model, states, targets, windows: list[Batch]) -> float:
    """Mean over active rows of the per-row MSE (float64), in eval mode (a sequence model gets
    each batch as one (T, B, N) sequence); the model's running statistics and noise counters
    are restored afterwards."""
    snap = files.snapshot_state(model)
    model.eval()
    sse, n = 0.0, 0.0
    try:
        with no_grad():
            for batch in windows:
                model.reset_state()
                if model.supports_sequences:
                    pred = model.forward(gather_sequence(states, batch)).numpy()
                    err = ((pred.astype(np.float64) - gather_sequence(targets, batch)) ** 2)
                    err = err.mean(axis=-1)
                    sse += float((err * batch.mask).sum())
                    n += float(batch.mask.sum())
                    continue
                for j in range(batch.steps):
                    pred = model.forward(gather(states, batch, j)).numpy().astype(np.float64)
                    err = ((pred - gather(targets, batch, j)) ** 2).mean(axis=1)
                    sse += float((err * batch.mask[j]).sum())
                    n += float(batch.mask[j].sum())
    finally:
        files.restore_state(model, snap)
        model.train()
        model.reset_state()
    return sse / n


def load_encoder(path) -> tuple[Model, TargetScaler]:
    """An encoder written by the study and its target scaler (forecast -> raw units with
    ``scaler.inverse``); ModelFileError if the file holds another model."""
    model = Model.load(path, name=ROLE)
    meta = model.file_content["meta"]
    if meta.get("role") != ROLE:
        raise ModelFileError(f"{path}: holds a {meta.get('role') or 'non-study'} model, not an "
                             f"encoder; train one with 'neurofx study encoder'")
    scaler = TargetScaler.from_dict(meta.get("target_scaler"), str(path))
    return model, scaler


def forecast(model: Model, scaler: TargetScaler, states: np.ndarray) -> np.ndarray:
    """Raw-unit forecasts (T, 216) of consecutive states, fed in order from a reset state."""
    model.reset_state()
    out = np.stack([model.predict(np.asarray(s, np.float32)[None, :])[0] for s in states])
    if out.shape[1] != FORECAST_SIZE:
        raise ValueError(f"encoder output has {out.shape[1]} values, expected {FORECAST_SIZE}")
    return scaler.inverse(out)
