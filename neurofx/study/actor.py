"""`neurofx study actor`: the seed's Study (spec 5.3) with the run's encoder frozen.

Per step j of a batch of chronological sub-sequences (all models reset at the batch start):

1. encoder forward on the states (no graph, eval mode: its weights never change);
2. critic: input = the stored actions and the forecast, target = the immediate reward of each
   action (``R_i - 0.99 R_{i+1}``: neurofx records the reward of action i at step i),
   standardised per component with the training trajectories' statistics (the raw rewards are
   ~1e-5..1e-3: their MSE would be ~1e-6), one optimizer step of the critic;
3. actor forward on the 12-value account vector and the forecast;
4. behaviour cloning: MSE to the stored action (+ the VAE head's KL) on the rows of
   trajectories whose discounted balance reward at step 0 is positive;
5. critic-guided improvement: the critic (eval mode, not updated) scores the actor's action,
   target = raw score * 1.01 if >= 0 else * 0.99 per component, applied to the de-standardised
   score and standardised again (:func:`~.targets.improvement_targets`), and the gradient flows
   back through the critic into the actor.

The actor's outputs are in its action coding (:mod:`neurofx.agents.actions`, docs/actions.md;
``--model-arg actor.coding=signed`` by default, ``raw`` the seed's): the stored actions are
encoded once (the cloning targets and the critic's inputs), the coding's statistics are fitted
on the training trajectories, and the actor and critic files record it in their meta
(``action_coding``), so a policy decodes the actor's outputs the way it was trained.

The losses are the models' own (``losses.set_loss``: MSE for ``baseline``, the seed's FreDF,
i.e. 0.3 MSE + 0.7 MAE on single-step outputs, for ``tpm``); a sequence encoder computes the
batch's forecasts in one forward. Steps 4 and 5 are summed into one backward and one actor
optimizer step (the seed makes two updates). The critic's gradient buffer, filled by step 5,
is cleared by its next zero_grad.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neurofx import agents
from neurofx.agents.actions import (
    CODINGS,
    DEFAULT_CODING,
    META_KEY,
    RAW,
    ActionCoding,
    coding_of,
    signed_units,
)
from neurofx.errors import NeurofxError
from neurofx.nn import ops
from neurofx.nn.model import Model
from neurofx.nn.serialize import ModelFileError
from neurofx.nn.tensor import Tensor, no_grad
from neurofx.schema import FORECAST_SIZE, N_REWARDS, STATE_SIZE

from . import files
from .data import Batch, Dataset
from .encoder import ENCODER_FILE, gather, gather_sequence, load_encoder
from .losses import model_loss, set_loss, with_extras
from .settings import Settings
from .stage import Part, TrajectoryStage
from .targets import (
    IMPROVE_DOWN,
    IMPROVE_UP,
    TargetScaler,
    actor_inputs,
    clones,
    critic_targets,
    improvement_targets,
)

ACTOR_FILE, CRITIC_FILE = "actor.npz", "critic.npz"
CRITIC_FIX = "retrain the critic with 'neurofx study actor'"


class ActorStage(TrajectoryStage):
    name = "actor"
    train_keys = ("critic", "actor", "q")
    val_keys = ("critic", "actor", "q")
    plot_groups = {"critic: immediate reward of stored actions, standardised units":
                   ["train_critic", "val_critic"],
                   "actor: cloning of profitable trajectories": ["train_actor", "val_actor"]}

    def __init__(self, settings: Settings, data: Dataset, encoder_path: Path | None = None):
        super().__init__(settings, data)
        path = encoder_path or settings.run_dir / ENCODER_FILE
        self.encoder, _ = load_encoder(path)
        self.encoder.eval()
        self.clone = np.array([clones(t) for t in data.trajs])
        if not self.clone[data.train].any():
            raise NeurofxError(f"{data.path}: no profitable trajectory (discounted balance "
                               f"reward at step 0 > 0) to clone; collect passes that made a "
                               f"profit first")
        args = settings.model_args
        actor_args = dict(args.get("actor", {}))
        # not an architecture size: what the actor's outputs mean (docs/actions.md)
        kind = actor_args.pop("coding", DEFAULT_CODING)
        self.coding = fit_coding(kind, [data.trajs[i] for i in data.train])
        self.actor = agents.build("actor", settings.model, **actor_args)
        self.critic = agents.build("critic", settings.model, **args.get("critic", {}))
        losses = {role: set_loss(m, role, settings.model)
                  for role, m in (("actor", self.actor), ("critic", self.critic))}
        self.opt_actor = self.optimizer_for(self.actor)
        self.opt_critic = self.optimizer_for(self.critic)
        self._check_encoder(path)
        self.states = [t.states for t in data.trajs]
        self.accounts = [actor_inputs(t.accounts) for t in data.trajs]
        # the cloning targets and the critic's inputs, in the actor's output units
        self.actions = [self.coding.encode(t.actions) for t in data.trajs]
        self.critic_scaler = TargetScaler.fit_rewards([data.trajs[i] for i in data.train])
        self.rewards = [self.critic_scaler.transform(critic_targets(t)) for t in data.trajs]
        base = {"model": settings.model, "optimizer": settings.optimizer,
                "encoder": str(path), META_KEY: self.coding.to_dict()}
        clone_val = bool(self.clone[data.val].any()) if data.val else False
        self.parts = {
            "encoder": Part(self.encoder, None, None, None, {}),
            "critic": Part(self.critic, self.opt_critic, CRITIC_FILE, "critic",
                           {**base, "role": "critic", "overrides": args.get("critic", {}),
                            "loss": losses["critic"],
                            "target_scaler": self.critic_scaler.to_dict()},
                           self.critic_scaler),
            "actor": Part(self.actor, self.opt_actor, ACTOR_FILE,
                          "actor" if clone_val else None,
                          {**base, "role": "actor", "overrides": args.get("actor", {}),
                           "loss": losses["actor"]},
                          # the coded actions' statistics, checked on resume like the critic's
                          None if self.coding.is_raw else TargetScaler(self.coding.mean,
                                                                       self.coding.std)),
        }

    def _check_encoder(self, path) -> None:
        """The encoder's output must be the 216-value forecast the actor and critic read."""
        snap = files.snapshot_state(self.encoder)
        with no_grad():
            width = self.encoder.forward(np.zeros((1, STATE_SIZE), np.float32)).shape[-1]
        files.restore_state(self.encoder, snap)
        self.encoder.reset_state()
        if width != FORECAST_SIZE:
            raise ModelFileError(f"{path}: the encoder outputs {width} values, the actor and "
                                 f"critic read {FORECAST_SIZE}; retrain the encoder")

    def _forecasts(self, batch: Batch):
        """Step j -> forecast (B, 216) tensor. A sequence encoder runs once over the whole
        batch (the same forecasts as step by step from a reset state, faster)."""
        if not self.encoder.supports_sequences:
            return lambda j: self._forecast(batch, j)
        with no_grad():
            seq = self.encoder.forward(gather_sequence(self.states, batch)).numpy()
        dev = self.encoder.device
        return lambda j: Tensor.from_numpy(seq[j], device=dev)

    def _forecast(self, batch: Batch, j: int) -> Tensor:
        with no_grad():
            return self.encoder.forward(gather(self.states, batch, j))

    def train_batch(self, batch: Batch) -> dict[str, float]:
        enc, actor, critic = self.encoder, self.actor, self.critic
        for m in (enc, actor, critic):
            m.reset_state()
        actor.train()
        clone_rows = self.clone[batch.traj].astype(np.float32)
        sums = {"critic": 0.0, "actor": 0.0, "q": 0.0}
        n_clone, n_q = 0, 0.0
        forecasts = self._forecasts(batch)
        for j in range(batch.steps):
            mask = batch.mask[j]
            f = forecasts(j)
            stored = gather(self.actions, batch, j)
            # 2. critic on the stored actions
            critic.train()
            critic.zero_grad()
            loss_c = with_extras(model_loss(critic, critic.forward(stored, f),
                                            gather(self.rewards, batch, j), mask), critic)
            loss_c.backward()
            self.opt_critic.step()
            # 3-5. actor: cloning + improvement through the frozen critic
            actor.zero_grad()
            action = actor.forward(gather(self.accounts, batch, j), f)
            terms = []
            mask_clone = mask * clone_rows
            if mask_clone.any():
                bc = model_loss(actor, action, stored, mask_clone)
                terms.append(with_extras(bc, actor))
            improve, q_host = improvement_loss(critic, action, f, mask, self.critic_scaler)
            terms.append(improve)
            total = terms[0]
            for t in terms[1:]:
                total = ops.add(total, t)
            total.backward()
            self.opt_actor.step()
            sums["critic"] += loss_c.item()
            if mask_clone.any():
                sums["actor"] += bc.item()
                n_clone += 1
            q_raw = self.critic_scaler.inverse(q_host)
            sums["q"] += float((q_raw.sum(axis=1) * mask).sum())
            n_q += float(mask.sum())
        critic.train()
        return {"critic": sums["critic"] / batch.steps,
                "actor": sums["actor"] / n_clone if n_clone else float("nan"),
                "q": sums["q"] / n_q}

    def validate(self) -> dict[str, float]:
        """Critic MSE on stored actions (all rows, standardised units), actor cloning MSE of
        the mean action on profitable trajectories (in the action coding's units: standardised
        for ``signed``, raw for ``raw``), and the mean critic score of the actor's action (sum
        of the 3 de-standardised rewards, raw units)."""
        models = (self.encoder, self.actor, self.critic)
        snaps = [files.snapshot_state(m) for m in models]
        self.actor.eval()
        self.critic.eval()
        acc = {"critic": [0.0, 0.0], "actor": [0.0, 0.0], "q": [0.0, 0.0]}
        try:
            with no_grad():
                for batch in self.val_windows:
                    for m in models:
                        m.reset_state()
                    clone_rows = self.clone[batch.traj]
                    forecasts = self._forecasts(batch)
                    for j in range(batch.steps):
                        mask = batch.mask[j]
                        f = forecasts(j)
                        stored = gather(self.actions, batch, j)
                        q_stored = self.critic.forward(stored, f).numpy().astype(np.float64)
                        err_c = ((q_stored - gather(self.rewards, batch, j)) ** 2).mean(axis=1)
                        action = self.actor.forward(gather(self.accounts, batch, j), f)
                        err_a = ((action.numpy().astype(np.float64) - stored) ** 2).mean(axis=1)
                        q = self.critic_scaler.inverse(
                            self.critic.forward(action, f).numpy()).sum(axis=1)
                        mc = mask * clone_rows
                        for key, err, m in (("critic", err_c, mask), ("actor", err_a, mc),
                                            ("q", q, mask)):
                            acc[key][0] += float((err * m).sum())
                            acc[key][1] += float(m.sum())
        finally:
            for m, snap in zip(models, snaps, strict=True):
                files.restore_state(m, snap)
                m.reset_state()
            self.actor.train()
            self.critic.train()
        return {k: (s / n if n else float("nan")) for k, (s, n) in acc.items()}


def fit_coding(kind: str, trajectories) -> ActionCoding:
    """The action coding ``kind`` (``--model-arg actor.coding``) for actors trained on
    ``trajectories``: ``signed`` standardises each coded component with the mean and
    population std of every stored action of them (the study's :class:`TargetScaler` rule,
    std floor included)."""
    if kind not in CODINGS:
        raise NeurofxError(f"--model-arg actor.coding={kind}: unknown action coding; valid: "
                           f"{', '.join(CODINGS)}")
    if kind == RAW:
        return ActionCoding(RAW)
    sc = TargetScaler.from_rows(signed_units(np.concatenate([t.actions for t in trajectories])))
    return ActionCoding.signed(sc.mean, sc.std)


def improvement_loss(critic: Model, action: Tensor, forecast: Tensor, mask: np.ndarray,
                     scaler: TargetScaler, up: float = IMPROVE_UP,
                     down: float = IMPROVE_DOWN) -> tuple[Tensor, np.ndarray]:
    """Spec 5.3 step 5: the critic (eval mode) scores ``action`` in standardised units; the
    loss (the critic's ``loss_fn``) pulls each score towards
    :func:`~.targets.improvement_targets` (the raw reward x ``up`` if >= 0 else x ``down``,
    standardised again with ``scaler``), over the rows with
    ``mask == 1``. Its gradient reaches the actor through ``action``; the caller steps only the
    actor's optimizer (the critic's gradient buffer fills too and is cleared by its next
    zero_grad). Returns the loss and the standardised scores (host copy)."""
    critic.eval()
    try:
        q = critic.forward(action, forecast)
    finally:
        critic.train()
    q_host = q.numpy()
    return model_loss(critic, q, improvement_targets(q_host, scaler, up, down), mask), q_host


def load_critic(path) -> tuple[Model, TargetScaler]:
    """A critic written by the study and the scaler of its targets (its outputs are
    standardised rewards: :func:`critic_rewards` or ``scaler.inverse`` give raw units)."""
    model = Model.load(path, name="critic")
    meta = model.file_content["meta"]
    if meta.get("role") != "critic":
        raise ModelFileError(f"{path}: holds a {meta.get('role') or 'non-study'} model, not a "
                             f"critic; {CRITIC_FIX}")
    return model, TargetScaler.from_dict(meta.get("target_scaler"), str(path), N_REWARDS,
                                         CRITIC_FIX)


def critic_rewards(critic: Model, scaler: TargetScaler, actions: np.ndarray,
                   forecasts: np.ndarray) -> np.ndarray:
    """The critic's predicted immediate rewards in raw units, float64 (N, 3): ``actions`` (N, 6,
    the executed 6-vectors: the critic reads them in its file's action coding) and the
    encoder's outputs ``forecasts`` (N, 216, the standardised forecast it reads)."""
    coded = coding_of(critic).encode(np.asarray(actions, np.float64))
    out = critic.predict(coded, np.asarray(forecasts, np.float32))
    return scaler.inverse(out)


def load_actor_critic(folder) -> tuple[Model, Model, TargetScaler]:
    """The actor and critic a study run wrote into ``folder``, and the critic's scaler."""
    path = Path(folder) / ACTOR_FILE
    actor = Model.load(path, name="actor")
    if actor.file_content["meta"].get("role") != "actor":
        raise ModelFileError(f"{path}: does not hold an actor written by 'neurofx study'")
    critic, scaler = load_critic(Path(folder) / CRITIC_FILE)
    return actor, critic, scaler
