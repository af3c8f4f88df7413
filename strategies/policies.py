"""Policies that choose the 6-value action at the open of every bar (spec 3.1, 4.1, 4.2).

A policy is any object with ``reset(seed=None)`` (called once at the start of every pass) and
``act(t, state, account_vector) -> 6 floats`` ``[buy lots, buy TP, buy SL, sell lots, sell TP,
sell SL]`` (TP/SL as fractions of 1000 points). ``t`` is the bar index in the pass, ``state`` the
1080 state values (float32) and ``account_vector`` the actor's 12 values (float32). The
strategy nets and executes what ``act`` returns (strategies/netting.py).

A group of passes replayed side by side (``strategies.agent.run_agent_group``) asks a
:class:`RowPolicy` once per bar for all of them: ``reset_rows(seeds)`` and ``act_rows(t,
state, account_vectors) -> one action per row``. :class:`NeuralPolicy` is one natively (one
batch-N actor forward per bar); :class:`PolicyRows` makes one of N single-pass policies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from neurofx import agents
from neurofx.agents.actions import coding_of
from neurofx.collectors.realorl import realorl_actions
from neurofx.errors import NeurofxError
from neurofx.nn.model import Model
from neurofx.schema import ACTOR_ACCOUNT_SIZE, N_ACTIONS, STATE_SIZE

from .broker import BrokerConfig, quote, spread_price
from .feeds import BarArrays


@runtime_checkable
class Policy(Protocol):
    name: str

    def reset(self, seed: int | None = None) -> None:
        """Start a pass: clear per-pass state; ``seed`` seeds any randomness of the pass."""

    def act(self, t: int, state: np.ndarray, account_vector: np.ndarray) -> Sequence[float]:
        """The action at the open of bar ``t`` of the pass."""


@runtime_checkable
class RowPolicy(Protocol):
    def reset_rows(self, seeds: Sequence[int | None]) -> None:
        """Start a group of ``len(seeds)`` passes, row i seeded with ``seeds[i]``."""

    def act_rows(self, t: int, state: np.ndarray,
                 account_vectors: np.ndarray) -> Sequence[Sequence[float]]:
        """One action per row at the open of bar ``t`` (``account_vectors``: (rows, 12)); each
        row's action is what the policy would give that pass alone."""


class PolicyRows:
    """A :class:`RowPolicy` of independent single-pass policies, one per row, asked in turn."""

    def __init__(self, policies: Sequence[Policy]):
        self.policies = list(policies)
        self.name = self.policies[0].name if self.policies else ""

    def reset_rows(self, seeds: Sequence[int | None]) -> None:
        if len(seeds) != len(self.policies):
            raise NeurofxError(f"{len(seeds)} seeds for a group of {len(self.policies)} "
                               "policies")
        for policy, seed in zip(self.policies, seeds, strict=True):
            policy.reset(seed)

    def act_rows(self, t, state, account_vectors):
        return [p.act(t, state, v) for p, v in zip(self.policies, account_vectors, strict=True)]


def row_policy(policy) -> RowPolicy:
    """``policy`` as a :class:`RowPolicy`: itself when it is one, else a group of one."""
    return policy if isinstance(policy, RowPolicy) else PolicyRows([policy])


class ScriptedPolicy:
    """Fixed actions by bar index (``{t: action}``; other bars get ``default``), for tests.

    Records every ``(t, state, account_vector)`` it is asked about in ``calls``.
    """

    name = "scripted"

    def __init__(self, actions: dict[int, Sequence[float]],
                 default: Sequence[float] = (0.0,) * N_ACTIONS):
        self.actions = {int(t): tuple(float(x) for x in a) for t, a in actions.items()}
        self.default = tuple(float(x) for x in default)
        self.calls: list[tuple[int, np.ndarray, np.ndarray]] = []

    def reset(self, seed: int | None = None) -> None:
        self.calls = []

    def act(self, t, state, account_vector):
        self.calls.append((t, np.array(state), np.array(account_vector)))
        return self.actions.get(t, self.default)


class RandomPolicy:
    """Seeded random trader whose actions open, hold, trail and close real trades.

    At the first bar, and afterwards with probability ``1 - hold_prob`` per bar, it draws a new
    target: flat (probability ``flat_prob``), else buy or sell with equal odds, lots uniform in
    ``[min_lot, max_lots]``; all four TP/SL fractions uniform in ``tp_range``/``sl_range``. The
    other bars repeat the target, which the netting rule turns into holding the position with
    TP/SL re-priced from the quote (SL only in the favourable direction). Each bar consumes the
    same number of draws from one ``np.random.Generator`` seeded by ``reset(seed)``.
    """

    name = "random"

    def __init__(self, seed: int = 0, max_lots: float = 0.1, min_lot: float = 0.01,
                 hold_prob: float = 0.95, flat_prob: float = 0.3,
                 tp_range: tuple[float, float] = (0.1, 1.0),
                 sl_range: tuple[float, float] = (0.1, 1.0)):
        for name, p in (("hold_prob", hold_prob), ("flat_prob", flat_prob)):
            if not 0.0 <= p <= 1.0:
                raise NeurofxError(f"random policy: {name} must be in [0, 1], got {p}")
        if not 0 < min_lot <= max_lots:
            raise NeurofxError(f"random policy: need 0 < min_lot <= max_lots, got {min_lot}, "
                               f"{max_lots}")
        for name, (lo, hi) in (("tp_range", tp_range), ("sl_range", sl_range)):
            if not 0 <= lo <= hi:
                raise NeurofxError(f"random policy: {name} must be 0 <= low <= high, got "
                                   f"({lo}, {hi})")
        self.max_lots, self.min_lot = float(max_lots), float(min_lot)
        self.hold_prob, self.flat_prob = float(hold_prob), float(flat_prob)
        self.tp_range, self.sl_range = tuple(tp_range), tuple(sl_range)
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self.seed = 0 if seed is None else int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.target: tuple[float, ...] | None = None

    def act(self, t, state, account_vector):
        u = self.rng.random(7)  # change?, side, lots, 4 x TP/SL: the same draws every bar
        if self.target is None or u[0] >= self.hold_prob:
            lots = self.min_lot + u[2] * (self.max_lots - self.min_lot)
            (tlo, thi), (slo, shi) = self.tp_range, self.sl_range
            tp_b, sl_b, tp_s, sl_s = (tlo + u[3] * (thi - tlo), slo + u[4] * (shi - slo),
                                      tlo + u[5] * (thi - tlo), slo + u[6] * (shi - slo))
            side_u = (u[1] - self.flat_prob) / (1.0 - self.flat_prob) if self.flat_prob < 1 \
                else -1.0
            if u[1] < self.flat_prob:
                buy = sell = 0.0
            elif side_u < 0.5:
                buy, sell = lots, 0.0
            else:
                buy, sell = 0.0, lots
            self.target = (buy, tp_b, sl_b, sell, tp_s, sl_s)
        return self.target


def _load_or_build(role: str, spec, **overrides):
    """A Model from a file path, a registered architecture name, or a Model as is."""
    if isinstance(spec, Model):
        return spec
    path = Path(str(spec))
    if path.suffix or path.exists():
        return Model.load(path, name=role)
    if str(spec) not in agents.names(role):
        raise NeurofxError(
            f"--{role} {spec!r}: no such model file and no registered {role} of that name; "
            f"give a model file or one of {', '.join(agents.names(role))}"
        )
    return agents.build(role, str(spec), model_name=role, **overrides)


class NeuralPolicy:
    """The seed's agent: encoder (state -> 216 forecast) then actor (account 12, forecast 216).

    ``encoder``/``actor`` are model files, registered architecture names (random weights, as
    the seed creates when no model file exists) or :class:`~neurofx.nn.Model` objects. With
    ``stochastic`` (default) every ``VAEHead`` of the actor samples in eval mode: the seed's
    exploration; otherwise the action comes from the head's mean. The actor's outputs become
    the 6-value action through the action coding of its file (``coding``,
    :mod:`neurofx.agents.actions`, docs/actions.md; ``raw``, the outputs as they are, for
    files without one). The models are stateful across the bars of a pass (recurrent layers, the
    running normaliser's statistics); ``reset(seed)`` restores the state they had when the
    policy was made, clears recurrent state (``model.reset_state()``) and re-seeds the VAE
    noise, so every pass starts like a fresh MT5 tester pass that loads the model files.

    It is a :class:`RowPolicy`: ``reset_rows(seeds)`` starts a group of passes whose actions
    come from one batch forward of the actor per bar, each row with its own noise seed (the
    encoder's forecast is the same for all of them); ``reset``/``act`` are a group of one.
    Row i's action equals that of pass i alone, bit for bit (tests/test_pass_groups.py).
    """

    name = "neural"

    def __init__(self, encoder="tpm", actor="tpm", stochastic: bool = True):
        self.encoder = _load_or_build("encoder", encoder)
        self.actor = _load_or_build("actor", actor)
        # where each model came from, for messages: a file, an architecture name or a Model
        self.sources = {role: spec.name if isinstance(spec, Model) else str(spec)
                        for role, spec in (("encoder", encoder), ("actor", actor))}
        self.stochastic = bool(stochastic)
        # what the actor's outputs mean (docs/actions.md); files without one: the seed's raw
        self.coding = coding_of(self.actor, self.sources["actor"])
        self.encoder.eval()
        self.actor.eval()
        self._heads = [m for _, m in self.actor.net.modules()
                       if type(m).__name__ == "VAEHead"]
        for head in self._heads:
            head.stochastic = self.stochastic
        self._base_seeds = [int(getattr(h, "seed", 0)) for h in self._heads]
        self._initial = [self._state_of(m) for m in (self.encoder, self.actor)]
        self.seed: int | None = None
        self.seeds: list[int | None] = [None]
        self.forecasts = SharedForecasts()
        self._step, self._encoder_live = 0, False

    def check_models(self, fix: str) -> int:
        """Check that the encoder takes the state, the actor takes the encoder's forecast and
        gives the 6 actions (one forward on zeros; :meth:`reset` undoes its effect on running
        statistics); a mismatch, e.g. swapped files, is one line naming the file and ``fix``.
        Returns the forecast's size."""
        enc_name, act_name = self.sources["encoder"], self.sources["actor"]
        seeds = self.seeds
        self.reset()  # a group of one
        state = np.zeros((1, STATE_SIZE), dtype=np.float32)
        try:
            forecast = self.encoder.predict(state)
        except (ValueError, NeurofxError) as exc:
            raise NeurofxError(f"{enc_name}: an encoder of another architecture (it does not "
                               f"take the {STATE_SIZE}-value state: {exc}); {fix}") from None
        try:
            out = self.actor.predict(np.zeros((1, ACTOR_ACCOUNT_SIZE), np.float32), forecast)
        except (ValueError, NeurofxError) as exc:
            raise NeurofxError(f"{act_name}: an actor of another architecture than {enc_name} "
                               f"(it does not take its {forecast.shape[-1]}-value forecast: "
                               f"{exc}); {fix}") from None
        if out.size != N_ACTIONS:
            raise NeurofxError(f"{act_name}: an actor of another architecture (it gives "
                               f"{out.size} values, a policy needs {N_ACTIONS}); {fix}")
        for name, values in ((enc_name, forecast), (act_name, out)):
            if not np.isfinite(values).all():
                raise NeurofxError(f"{name}: the model computes NaN or infinite values (its "
                                   f"weights are not finite: a diverged training?); {fix}")
        self.reset_rows(seeds)
        return int(forecast.shape[-1])

    @staticmethod
    def _state_of(model) -> dict[str, np.ndarray]:
        return {name: t.numpy().copy() for name, t in model.net.named_state()}

    def reset(self, seed: int | None = None) -> None:
        self.reset_rows([seed])

    def reset_rows(self, seeds: Sequence[int | None]) -> None:
        if not seeds:
            raise NeurofxError("a group of passes needs at least one seed")
        for model in (self.encoder, self.actor):
            self._restore(model)
        self._step, self._encoder_live = 0, False
        self.seeds = list(seeds)
        self.seed = self.seeds[0]
        for head, base in zip(self._heads, self._base_seeds, strict=True):
            # the pass seed replaces the file's noise seed; the counter restarts at 0
            head.set_row_seeds([base if s is None else (int(s) + 7919 * base) & 0xFFFFFFFF
                                for s in self.seeds])
            head.calls = 0

    def _restore(self, model) -> None:
        """``model`` as it was when the policy was made (running statistics, recurrent state)."""
        saved = self._initial[0 if model is self.encoder else 1]
        for name, tensor in model.net.named_state():
            tensor.assign(saved[name])
        model.reset_state()

    def _forecast(self, s: np.ndarray) -> np.ndarray:
        """The encoder's forecast of step ``self._step`` of the pass: shared with the earlier
        passes over the same states (the encoder does not see the account), computed otherwise;
        either way the same numbers."""
        i, shared = self._step, self.forecasts
        self._step += 1
        if not self._encoder_live:
            hit = shared.get(i, s)
            if hit is not None:
                return hit
            # the first step no earlier pass saw: bring the encoder to it, then go on live
            self._restore(self.encoder)
            for earlier in shared.states[:i]:
                self.encoder.predict(earlier)
            shared.truncate(i)
            self._encoder_live = True
        forecast = self.encoder.predict(s)
        shared.append(s, forecast)
        return forecast

    def act(self, t, state, account_vector):
        return self.act_rows(t, state, np.reshape(account_vector, (1, -1)))[0]

    def act_rows(self, t, state, account_vectors):
        rows = len(self.seeds)
        s = np.asarray(state, dtype=np.float32).reshape(1, -1)
        a = np.asarray(account_vectors, dtype=np.float32).reshape(rows, -1)
        forecast = self._forecast(s)
        if rows > 1 and not getattr(self.actor.net, "shares_context", False):
            forecast = np.repeat(forecast, rows, axis=0)  # else one forecast for every row
        out = self.actor.predict(a, forecast).reshape(rows, -1)
        if out.shape[1] != N_ACTIONS:
            raise NeurofxError(f"actor model returns {out.shape[1]} values per bar; a policy "
                               f"needs {N_ACTIONS} (buy lots, TP, SL, sell lots, TP, SL)")
        return [tuple(float(x) for x in self.coding.decode(row)) for row in out]


class SharedForecasts:
    """The encoder's forecasts of the steps of a pass, kept with the states they came from, so
    every later pass over the same bars reuses them (issue 14: the encoder does not see the
    account, so all passes of a run share its forecasts). A step is reused only if its state
    equals the stored one byte for byte (a digest check)."""

    def __init__(self):
        self.states: list[np.ndarray] = []
        self.values: list[np.ndarray] = []
        self._digests: list[bytes] = []

    @staticmethod
    def _digest(state: np.ndarray) -> bytes:
        return hashlib.blake2b(np.ascontiguousarray(state).tobytes(), digest_size=16).digest()

    def get(self, step: int, state: np.ndarray) -> np.ndarray | None:
        if step < len(self.values) and self._digests[step] == self._digest(state):
            return self.values[step]
        return None

    def append(self, state: np.ndarray, forecast: np.ndarray) -> None:
        self.states.append(state.copy())
        self.values.append(np.array(forecast, copy=True))
        self._digests.append(self._digest(state))

    def truncate(self, steps: int) -> None:
        del self.states[steps:], self.values[steps:], self._digests[steps:]


class RealORLPolicy:
    """Precomputed actions per bar (spec 4.2), e.g. from :func:`realorl_policy`."""

    name = "real-orl"

    def __init__(self, actions: np.ndarray, source: str = ""):
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[1] != N_ACTIONS:
            raise NeurofxError(f"real-orl actions must have shape (bars, 6), got {actions.shape}")
        self.actions = actions
        self.source = source

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, t, state, account_vector):
        return tuple(self.actions[t])


def open_quotes(bars: BarArrays, config: BrokerConfig) -> tuple[np.ndarray, np.ndarray]:
    """Bid and ask at every bar open, by the broker's own :func:`quote` rule."""
    quotes = [quote(b, spread_price(s, config), config)
              for b, s in zip(bars.open, bars.spread_points, strict=True)]
    bid, ask = np.array(quotes, dtype=np.float64).reshape(-1, 2).T
    return bid.copy(), ask.copy()


def realorl_policy(deals, bars: BarArrays, config: BrokerConfig | None = None,
                   source: str = "") -> RealORLPolicy:
    """Real-ORL actions of ``deals`` (``HistDeal`` list) on the bars of a pass."""
    config = config or BrokerConfig()
    bid, ask = open_quotes(bars, config)
    actions = realorl_actions(deals, bars.time_s, bid, ask, point=config.point)
    if not np.isfinite(actions).all():
        raise NeurofxError(f"{source or 'deals'}: reconstructed actions are not finite")
    return RealORLPolicy(actions, source)


def pass_seed(seed: int, index: int) -> int:
    """The seed of pass ``index`` of a run with ``seed``: independent of how passes are spread
    over processes (a 32-bit draw of ``np.random.SeedSequence([seed, index])``)."""
    if seed < 0 or index < 0:
        raise NeurofxError(f"seed and pass index must be >= 0, got {seed}, {index}")
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])
