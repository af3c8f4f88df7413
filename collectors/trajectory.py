"""The record of one research pass: what the agent saw, held, did and earned at every bar.

Array layout (one row per bar, seed spec sections 2.1-3.3):

========  ===========  =======  ===================================================
name      shape        dtype    content
========  ===========  =======  ===================================================
states    (T, 1080)    float32  120 bars x 9 features, bar b at columns b*9..b*9+8
accounts  (T, 8)       float64  balance, equity, buy lots, sell lots, buy profit,
                                sell profit, position discount, bar open time (Unix s)
actions   (T, 6)       float32  executed (netted) action: buy lots, TP, SL, sell lots, TP, SL
rewards   (T, 3)       float32  per-step rewards, or their discounted sums once
                                :meth:`Trajectory.discount` has run
========  ===========  =======  ===================================================

``accounts`` is float64 (the seed stores float32): a Unix time near 1.7e9 has a float32
resolution of 128 s, which would move bar times off the hour.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from neurofx.data.features import StateWindows
from neurofx.errors import NeurofxError
from neurofx.schema import ACCOUNT_RECORD_SIZE, N_ACTIONS, N_REWARDS, STATE_SIZE

DISCOUNT_FACTOR = 0.99

# name -> (columns, dtype): the one definition used by the record, the store and its validation
ARRAY_SPECS: dict[str, tuple[int, np.dtype]] = {
    "states": (STATE_SIZE, np.dtype(np.float32)),
    "accounts": (ACCOUNT_RECORD_SIZE, np.dtype(np.float64)),
    "actions": (N_ACTIONS, np.dtype(np.float32)),
    "rewards": (N_REWARDS, np.dtype(np.float32)),
}


def check_arrays(arrays: dict[str, np.ndarray], where: str, names=tuple(ARRAY_SPECS)) -> int:
    """Check shapes, dtypes and finiteness of the named arrays; return the step count T.

    ``where`` names the source (a file) in the one-line :class:`NeurofxError`.
    """
    steps = None
    for name in names:
        cols, dtype = ARRAY_SPECS[name]
        if name not in arrays:
            raise NeurofxError(f"{where}: field '{name}' is missing; the file is not a trajectory")
        arr = arrays[name]
        if arr.dtype != dtype:
            raise NeurofxError(f"{where}: field '{name}' has dtype {arr.dtype}, expected {dtype}")
        if arr.ndim != 2 or arr.shape[1] != cols:
            raise NeurofxError(
                f"{where}: field '{name}' has shape {arr.shape}, expected (steps, {cols})"
            )
        if steps is None:
            steps = arr.shape[0]
        elif arr.shape[0] != steps:
            raise NeurofxError(
                f"{where}: field '{name}' has {arr.shape[0]} steps, '{names[0]}' has {steps}"
            )
        if isinstance(arr, StateWindows):  # windows of warmed-up rows: checked when made
            continue
        if not np.isfinite(arr).all():
            row = int(np.argwhere(~np.isfinite(arr))[0][0])
            raise NeurofxError(f"{where}: field '{name}' holds NaN or inf (first at step {row})")
    if not steps:
        raise NeurofxError(f"{where}: field '{names[0]}' has 0 steps; a trajectory needs 1 or more")
    return steps


def discounted_sums(rewards: np.ndarray, gamma: float = DISCOUNT_FACTOR) -> np.ndarray:
    """R_i = r_i + gamma * R_{i+1} per component, last step unchanged (float64 accumulation)."""
    out = np.asarray(rewards, dtype=np.float64).copy()
    for i in range(out.shape[0] - 2, -1, -1):
        out[i] += gamma * out[i + 1]
    return out


def immediate_rewards(discounted: np.ndarray, gamma: float = DISCOUNT_FACTOR) -> np.ndarray:
    """Invert :func:`discounted_sums`: r_i = R_i - gamma * R_{i+1} (float64)."""
    d = np.asarray(discounted, dtype=np.float64)
    out = d.copy()
    out[:-1] -= gamma * d[1:]
    return out


@dataclass(frozen=True, eq=False)
class Trajectory:
    """One pass: four arrays (see the module docstring) plus its metadata.

    ``states`` may be a :class:`~neurofx.data.features.StateWindows` (windows of one feature
    matrix read on demand; research passes and version-2 stores) instead of an array.

    ``final_equity`` defaults to the equity of the last step (``accounts[-1, 1]``), which is
    what the seed's buffer compares. ``discounted`` tells whether ``rewards`` already hold the
    discounted sums; :meth:`discount` sets it and refuses to run twice.
    """

    states: np.ndarray | StateWindows
    accounts: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    profit: float
    policy: str
    seed: int | None = None
    period: str = ""
    final_equity: float | None = None
    discounted: bool = False
    gamma: float = DISCOUNT_FACTOR
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        set_ = object.__setattr__
        for name, (_, dtype) in ARRAY_SPECS.items():
            if isinstance(getattr(self, name), StateWindows):
                continue  # states read on demand from a feature matrix (store version 2)
            arr = np.ascontiguousarray(np.asarray(getattr(self, name)), dtype=dtype)
            arr.setflags(write=False)
            set_(self, name, arr)
        check_arrays({n: getattr(self, n) for n in ARRAY_SPECS}, "trajectory")
        if self.final_equity is None:
            set_(self, "final_equity", float(self.accounts[-1, 1]))
        for name in ("profit", "final_equity", "gamma"):
            value = float(getattr(self, name))
            if not math.isfinite(value):
                raise NeurofxError(f"trajectory: field '{name}' is {value}; it must be finite")
            set_(self, name, value)
        if not isinstance(self.policy, str) or not self.policy:
            raise NeurofxError("trajectory: field 'policy' must be a non-empty name")
        if self.seed is not None:
            set_(self, "seed", int(self.seed))
        try:
            json.dumps(self.extra, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise NeurofxError(f"trajectory: field 'extra' must be plain JSON ({err})") from None

    @property
    def steps(self) -> int:
        return int(self.states.shape[0])

    @property
    def score(self) -> float:
        """Sampling score of spec 5.1: sum of the 3 discounted rewards of step 0."""
        if not self.discounted:
            raise NeurofxError("trajectory: 'score' needs discounted rewards; call discount()")
        return float(np.sum(self.rewards[0], dtype=np.float64))

    def discount(self) -> Trajectory:
        """Return a copy whose rewards are the backward sums r_i += gamma * r_{i+1} (once)."""
        if self.discounted:
            raise NeurofxError(
                "trajectory: rewards are already discounted (flag 'discounted'); "
                "the seed applies r_i += 0.99 * r_(i+1) once, when the pass ends"
            )
        summed = discounted_sums(self.rewards, self.gamma).astype(np.float32)
        return replace(self, rewards=summed, discounted=True)

    def immediate_rewards(self) -> np.ndarray:
        """Per-step rewards (float64), recovered from the discounted sums if needed."""
        if not self.discounted:
            return self.rewards.astype(np.float64)
        return immediate_rewards(self.rewards, self.gamma)

    def metadata(self) -> dict:
        """JSON-ready metadata (stable key order), as written to the store."""
        return {
            "discounted": bool(self.discounted),
            "extra": dict(sorted(self.extra.items())),
            "final_equity": self.final_equity,
            "gamma": self.gamma,
            "period": str(self.period),
            "policy": self.policy,
            "profit": self.profit,
            "seed": self.seed,
            "steps": self.steps,
        }


def _bd_record_dtype() -> np.dtype:
    fields_ = []
    for name, (cols, _) in ARRAY_SPECS.items():
        fields_ += [(name + "_len", "<i4"), (name, "<f4", (cols,))]
    return np.dtype(fields_)


def import_mt5_bd(path, policy: str = "mt5-bd") -> list[Trajectory]:
    """Read the seed's binary replay buffer ``<FileName>.bd`` (spec 4.1, little-endian).

    Layout: int32 n_traj; per trajectory int32 Total, float32 DiscountFactor, then Total
    records of four blocks [int32 len, len x float32]: state (1080), account (8), action (6),
    rewards (3, already discounted). The file carries no profit: ``profit`` is set to the
    balance change between the first and last stored steps.
    """
    data = memoryview(Path(path).read_bytes())
    rec = _bd_record_dtype()
    pos = 0

    def take(fmt: str, what: str):
        nonlocal pos
        size = np.dtype(fmt).itemsize
        if pos + size > len(data):
            raise NeurofxError(f"{path}: field '{what}' at byte {pos} runs past the end of file")
        value = np.frombuffer(data, fmt, 1, pos)[0]
        pos += size
        return value

    n_traj = int(take("<i4", "n_traj"))
    if n_traj < 0:
        raise NeurofxError(f"{path}: field 'n_traj' is {n_traj}; not a seed .bd file")
    out = []
    for k in range(n_traj):
        total = int(take("<i4", f"trajectory {k} Total"))
        gamma = float(take("<f4", f"trajectory {k} DiscountFactor"))
        if total <= 0 or pos + total * rec.itemsize > len(data):
            raise NeurofxError(
                f"{path}: field 'Total' of trajectory {k} is {total}; the file is truncated "
                f"or not a seed .bd buffer with 1080/8/6/3 floats per step"
            )
        recs = np.frombuffer(data, rec, total, pos)
        pos += total * rec.itemsize
        for name, (cols, _) in ARRAY_SPECS.items():
            bad = recs[name + "_len"] != cols
            if bad.any():
                step = int(np.argmax(bad))
                raise NeurofxError(
                    f"{path}: trajectory {k} step {step} field '{name}' has length "
                    f"{int(recs[name + '_len'][step])}, expected {cols}"
                )
        acc = recs["accounts"].astype(np.float64)
        try:
            traj = Trajectory(
                states=recs["states"], accounts=acc, actions=recs["actions"],
                rewards=recs["rewards"], profit=float(acc[-1, 0] - acc[0, 0]),
                policy=policy, discounted=True, gamma=gamma, period="",
            )
        except NeurofxError as err:
            raise NeurofxError(f"{path}: trajectory {k}: {err}") from None
        out.append(traj)
    if pos != len(data):
        raise NeurofxError(f"{path}: {len(data) - pos} bytes after the last trajectory")
    return out
