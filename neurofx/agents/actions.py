"""What the actor's 6 output values mean: the action coding (docs/actions.md).

The action a policy executes is the seed's 6-vector ``[buy lots, buy TP, buy SL, sell lots,
sell TP, sell SL]`` (spec 3.1; TP/SL as fractions of 1000 points), netted and turned into
orders by ``strategies/netting.py`` (spec 3.2). An :class:`ActionCoding` says how the actor's
outputs ``y`` (its VAE head's mean, or a sample of it) map to that vector (:meth:`decode`) and
how a stored action becomes the actor's cloning target and the critic's input
(:meth:`encode`):

* ``raw`` (the seed's; every actor file without an ``action_coding`` in its meta): ``y`` *is*
  the action. Cloned with a per-component MSE, the mean of a behaviour that buys and sells
  alike has ``buy lots ~ sell lots``, which the netting rule turns into no order.
* ``signed`` (what ``neurofx study actor`` trains unless ``--model-arg actor.coding=raw``):
  ``u = y * std + mean`` per component (``mean``/``std`` of the coded training actions, so the
  network works in standardised units, the lots as much as the TP/SL), with
  ``u = [net lots, buy TP, buy SL, volume lots, sell TP, sell SL]``, ``net = buy - sell`` and
  ``volume = buy + sell``. Decoded: the side is the sign of ``u[0]`` (buy if > 0, sell if
  < 0, none if 0) and its lots are ``max(u[3], 0)``; the other side's lots are 0. The size
  comes from the volume, which is never averaged across opposite sides, and only the side from
  the net. Encoding is linear and invertible, so any stored 6-vector (netted or not) has one
  coded target.

The coding travels in the model file's meta (``action_coding``: :meth:`to_dict`), in the actor
and in the critic (which reads coded actions); :func:`coding_of` reads it back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from neurofx.errors import NeurofxError
from neurofx.schema import N_ACTIONS

RAW, SIGNED = "raw", "signed"
CODINGS = (RAW, SIGNED)
DEFAULT_CODING = SIGNED  # what a new actor is trained with
CODING_VERSION = 1
META_KEY = "action_coding"
NET, VOLUME = 0, 3   # the coded components that replace buy lots and sell lots
STOPS = (1, 2, 4, 5)  # TP/SL fractions, the same in both codings


@dataclass(frozen=True)
class ActionCoding:
    """``kind`` (:data:`CODINGS`) and, for ``signed``, the mean and std of each coded
    component (6 values each; ``raw`` has none)."""

    kind: str = RAW
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __post_init__(self):
        if self.kind not in CODINGS:
            raise NeurofxError(f"action coding {self.kind!r}: unknown; valid: "
                               f"{', '.join(CODINGS)}")
        want = 0 if self.kind == RAW else N_ACTIONS
        values = (*self.mean, *self.std)
        if (len(self.mean) != want or len(self.std) != want
                or not all(isinstance(v, int | float) and not isinstance(v, bool)
                           and math.isfinite(v) for v in values)
                or not all(v > 0 for v in self.std)):
            raise NeurofxError(f"action coding {self.kind!r} needs {want} finite means and "
                               f"{want} positive stds, got {self.mean} and {self.std}")

    @classmethod
    def signed(cls, mean, std) -> ActionCoding:
        """The ``signed`` coding with the mean and std of each coded component (the study
        fits them with its target scaler on :func:`signed_units` of the training actions)."""
        return cls(SIGNED, tuple(float(x) for x in mean), tuple(float(x) for x in std))

    @property
    def is_raw(self) -> bool:
        return self.kind == RAW

    def encode(self, actions: np.ndarray) -> np.ndarray:
        """Stored actions (..., 6) -> what the actor is trained to output and the critic
        reads (float32)."""
        a = np.asarray(actions, np.float64)
        if self.is_raw:
            return a.astype(np.float32)
        return ((signed_units(a) - np.array(self.mean)) / np.array(self.std)).astype(np.float32)

    def units(self, outputs: np.ndarray) -> np.ndarray:
        """The actor's outputs (..., 6) in the coding's units (float64): ``raw`` the action,
        ``signed`` ``[net lots, buy TP, buy SL, volume lots, sell TP, sell SL]``."""
        y = np.asarray(outputs, np.float64)
        return y.copy() if self.is_raw else y * np.array(self.std) + np.array(self.mean)

    def decode(self, outputs: np.ndarray) -> np.ndarray:
        """The actor's outputs (..., 6) -> the 6-value action the netting rule executes
        (float64; module docstring)."""
        u = self.units(outputs)
        if self.is_raw:
            return u
        out = np.zeros_like(u)
        out[..., STOPS] = u[..., STOPS]
        volume = np.maximum(u[..., VOLUME], 0.0)
        out[..., 0] = np.where(u[..., NET] > 0, volume, 0.0)
        out[..., 3] = np.where(u[..., NET] < 0, volume, 0.0)
        return out

    def to_dict(self) -> dict:
        d = {"version": CODING_VERSION, "kind": self.kind}
        if not self.is_raw:
            d.update(mean=list(self.mean), std=list(self.std))
        return d

    @classmethod
    def from_dict(cls, data, where: str) -> ActionCoding:
        """Inverse of :meth:`to_dict`; ``where`` names the file in the one-line error."""
        ok = isinstance(data, dict) and data.get("version") == CODING_VERSION
        try:
            if ok and data.get("kind") == RAW:
                return cls(RAW)
            if ok and isinstance(data.get("mean"), list) and isinstance(data.get("std"), list):
                return cls(str(data.get("kind")), tuple(data["mean"]), tuple(data["std"]))
        except NeurofxError:
            pass
        raise NeurofxError(f"{where}: field '{META_KEY}' is missing or invalid (version "
                           f"{CODING_VERSION}, kind one of {', '.join(CODINGS)}; 'signed' with "
                           f"{N_ACTIONS} means and {N_ACTIONS} positive stds); retrain the "
                           f"actor with 'neurofx study actor'")


def signed_units(actions: np.ndarray) -> np.ndarray:
    """``[buy, tp, sl, sell, tp, sl]`` -> ``[buy - sell, tp, sl, buy + sell, tp, sl]``
    (float64): after netting one side is 0, so these are the signed position and its size."""
    a = np.asarray(actions, np.float64)
    u = a.copy()
    u[..., NET] = a[..., 0] - a[..., 3]
    u[..., VOLUME] = a[..., 0] + a[..., 3]
    return u


def coding_of(model, where: str = "") -> ActionCoding:
    """The coding recorded in a loaded model's meta (``raw`` when there is none: files of the
    seed's coding, written before codings existed, and models built in memory); ``where``
    names the file in errors."""
    content = getattr(model, "file_content", None) or {}
    meta = content.get("meta") or {}
    if META_KEY not in meta:
        return ActionCoding(RAW)
    return ActionCoding.from_dict(meta[META_KEY], where or str(getattr(model, "name", "model")))
