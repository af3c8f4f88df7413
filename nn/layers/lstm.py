"""LSTM layer: full backprop through time over a sequence, and a stateful step mode."""

from __future__ import annotations

import numpy as np

from .. import ops
from ..module import Module, register, uniform_init
from ..ops.lstm_cell import LSTMState, lstm_recurrence
from ..tensor import Parameter, Tensor


@register
class LSTM(Module):
    """Long short-term memory, torch's equations and names.

    ``weight_ih`` (4H, n_in), ``weight_hh`` (4H, H) and ``bias`` (4H,) with gate rows in the
    order i, f, g, o (input, forget, candidate, output)::

        z = x_t @ weight_ih^T + h_{t-1} @ weight_hh^T + bias
        i, f, o = sigmoid(z_i), sigmoid(z_f), sigmoid(z_o);  g = tanh(z_g)
        c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)

    * ``forward(x)`` with x (T, B, n_in) runs a sequence from a zero state and returns
      (T, B, H), or the last step's (B, H) when ``return_sequence`` is False. Backward is full
      backprop through time over the T steps.
    * ``forward(x)`` with x (B, n_in), or :meth:`step`, is the stateful bar-by-bar mode: one
      step continuing the (h, c) kept from the previous call, until :meth:`reset_state`. No
      graph is kept across calls: a backward through a step stops at its starting state.

    Adam-mini blocks: one per gate row of both weight matrices; the bias keeps per-element
    Adam. Initialisation U(-1/sqrt(H), 1/sqrt(H)) like torch.

    .. note:: Differences from the seed's CNeuronLSTMOCL (spec 8.1): the seed stores one
       4H x (H + n_in + 1) matrix with gates in the order f, i, o, c~; here the gates follow
       torch (i, f, g=c~, o) in two matrices. torch's two biases (b_ih + b_hh) are one bias
       here: they only ever appear summed. The seed truncates backprop to one step; sequence
       mode here backpropagates through the whole sequence (step mode gives the seed's
       one-step truncation).
    """

    def __init__(self, n_in: int, hidden: int, return_sequence: bool = True, seed: int = 0):
        if n_in < 1 or hidden < 1:
            raise ValueError(f"LSTM: n_in and hidden must be >= 1, got {n_in}, {hidden}")
        self.n_in, self.hidden, self.seed = n_in, hidden, seed
        self.return_sequence = return_sequence
        rng = np.random.default_rng(seed)
        four_h = 4 * hidden
        self.weight_ih = Parameter(uniform_init(rng, (four_h, n_in), hidden), "weight", n_in)
        self.weight_hh = Parameter(uniform_init(rng, (four_h, hidden), hidden), "weight", hidden)
        self.bias = Parameter(uniform_init(rng, (four_h,), hidden), "bias", 1)
        self._state: LSTMState | None = None

    def config(self) -> dict:
        return {"n_in": self.n_in, "hidden": self.hidden,
                "return_sequence": self.return_sequence, "seed": self.seed}

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.n_in or len(x.shape) not in (2, 3):
            raise ValueError(f"LSTM({self.n_in}->{self.hidden}): input must be (T, B, {self.n_in}) "
                             f"or (B, {self.n_in}), got {x.shape}")
        if len(x.shape) == 2:
            return self._step(x)
        steps, batch, _ = x.shape
        xw = ops.linear(ops.reshape(x, (steps * batch, self.n_in)), self.weight_ih, self.bias)
        y, _ = lstm_recurrence(xw, self.weight_hh, steps, batch)
        if self.return_sequence:
            return y
        size = batch * self.hidden
        flat = ops.reshape(y, (1, steps * size))
        return ops.reshape(ops.slice_cols(flat, (steps - 1) * size, steps * size),
                           (batch, self.hidden))

    def step(self, x: Tensor) -> Tensor:
        """One stateful step: x (B, n_in) -> h (B, H); the state carries to the next call."""
        if len(x.shape) != 2:
            raise ValueError(f"LSTM.step: input must be (B, {self.n_in}), got {x.shape}")
        return self(x)

    def _step(self, x: Tensor) -> Tensor:
        batch = x.shape[0]
        if self._state is not None and self._state.batch != batch:
            raise ValueError(f"LSTM.step: batch {batch} differs from the kept state's "
                             f"{self._state.batch}; call reset_state() first")
        xw = ops.linear(x, self.weight_ih, self.bias)
        y, self._state = lstm_recurrence(xw, self.weight_hh, 1, batch, self._state)
        return ops.reshape(y, (batch, self.hidden))

    def state_signature(self):
        return None if self._state is None else self._state.batch

    def reset_state(self) -> None:
        """Forget the kept (h, c): the next step starts from zeros."""
        self._state = None

    def state(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Host copies of the kept (h, c), each (B, H), or None after a reset."""
        if self._state is None:
            return None
        st, dev = self._state, self.weight_hh.device
        shape = (st.batch, self.hidden)
        return dev.to_host(st.h_buf, shape), dev.to_host(st.c_buf, shape)
