"""A trainable model: a module tree bound to one flat parameter store, with the public API.

``named_parameters()`` / ``load_parameters()`` exchange host copies by stable dotted names;
``model(x)`` / ``predict(x)`` return numpy arrays; ``train_step(x, y, optimizer)`` runs forward,
MSE backward and one optimizer step with a single host synchronisation (reading the loss).

``predict`` and ``train_step`` run through captured execution plans (:mod:`.plan`): the first
call per input shape records, later ones replay, bit-identical to eager calls. ``capture(fn)``
offers the same for any step built from the engine's ops. ``Model(..., eager=True)`` or
``NEUROFX_EAGER=1`` keeps everything eager.
"""

from __future__ import annotations

import numpy as np

from . import ops
from .device import Device, get_device
from .module import Module, build_module
from .parameters import ParameterStore
from .plan import CapturedCall, eager_forced
from .serialize import ModelFileError, load_state, read_model_file, save_model
from .summary import format_table, memory_table
from .tensor import Tensor, no_grad


class Model:
    """Owns a module tree and its parameters on one device."""

    def __init__(self, net: Module | dict, name: str = "model", device: Device | None = None,
                 loss_fn=None, eager: bool | None = None):
        """``loss_fn(prediction, target) -> (1,)-tensor`` defaults to ``ops.mse_loss``.
        ``eager``: True runs every call eagerly (no captured plans); None (default) follows
        ``NEUROFX_EAGER``."""
        self.eager = eager_forced() if eager is None else bool(eager)
        self._captured: list[CapturedCall] = []
        self._predict_call: CapturedCall | None = None
        self._train_calls: dict[tuple[int, int], tuple] = {}
        self.device = device or get_device()
        self.loss_fn = loss_fn or ops.mse_loss
        self.net = build_module(net) if isinstance(net, dict) else net
        self.name = name
        for path, module in self.net.modules():
            module._path = f"{name}.{path}" if path else name
        named = list(self.net.named_parameter_tensors())
        self.store = ParameterStore(
            [(n, p.init, p.role, p.block_size) for n, p in named], owner=name, device=self.device)
        for (n, p), data, grad in zip(named, self.store.data_views, self.store.grad_views,
                                      strict=True):
            p.bind(self.device, data, grad, f"{name}.{n}")
        self._params = dict(named)

    # ---- parameters ----------------------------------------------------------------------
    def named_parameters(self) -> dict[str, np.ndarray]:
        """name -> host copy of each parameter (names are stable: see docs/engine.md)."""
        return self.store.values()

    def named_gradients(self) -> dict[str, np.ndarray]:
        return self.store.grads()

    def load_parameters(self, values: dict[str, np.ndarray]) -> None:
        self.invalidate_plans()
        self.store.load(values)

    def parameter(self, name: str):
        return self._params[name]

    @property
    def num_parameters(self) -> int:
        return self.store.numel

    def zero_grad(self) -> None:
        self.store.zero_grad()

    def train(self, mode: bool = True) -> Model:
        self.net.train(mode)
        return self

    def eval(self) -> Model:
        return self.train(False)

    def reset_state(self) -> None:
        """Clear recurrent state (and the captured plans: they record again)."""
        self.invalidate_plans()
        self.net.reset_state()

    # ---- captured plans --------------------------------------------------------------------
    def capture(self, fn, name: str = "call") -> CapturedCall:
        """``fn(*tensors) -> Tensor | None`` as a :class:`~.plan.CapturedCall`: call it with
        host arrays (or tensors); the first call per key records, later calls replay; returns
        the result's host copy. With ``eager`` it simply runs ``fn`` each time. Its plans are
        dropped with the model's (:meth:`invalidate_plans`)."""
        call = CapturedCall(self, fn, name)
        self._captured.append(call)
        return call

    def invalidate_plans(self) -> None:
        """Forget every captured plan of this model (reload, state reset, reshaping)."""
        for call in self._captured:
            call.invalidate()

    def plan_info(self) -> dict:
        """Plans, launches per plan, arena bytes and refusal reasons, by captured call."""
        return {c.name: {"plans": len(c.plans),
                         "launches": [p.launches for p in c.plans.values()],
                         "arena_bytes": sum(p.arena_bytes for p in c.plans.values()),
                         "refused": [r for rs in c.refusals.values() for r in rs]}
                for c in self._captured}

    def describe(self) -> dict:
        return self.net.describe()

    @property
    def supports_sequences(self) -> bool:
        """True when the top module takes a (T, B, N) sequence of B sub-sequences in one
        forward (state reset at t = 0, full backprop through time): its class sets
        ``sequence_input = True`` (the TPM encoder). Others take (B, N) per call."""
        return bool(getattr(self.net, "sequence_input", False))

    # ---- forward ---------------------------------------------------------------------------
    def _as_tensor(self, x) -> Tensor:
        return x if isinstance(x, Tensor) else Tensor.from_numpy(x, device=self.device)

    def forward(self, *inputs) -> Tensor:
        """Forward on device tensors (or arrays, uploaded); returns the output tensor."""
        return self.net(*(self._as_tensor(x) for x in inputs))

    def predict(self, *inputs, sync: bool = True):
        """Inference in eval mode without a graph; returns a host array (a captured plan
        per input shape unless ``eager``). ``sync=False`` returns a device tensor without
        waiting (planned: the plan's output buffer, overwritten by its next replay), so a
        chain such as ``actor.predict(account, encoder.predict(state, sync=False))`` waits
        once per step."""
        if self.eager:
            out = self._predict(*inputs)
            return out.numpy() if sync else out
        if self._predict_call is None:
            self._predict_call = self.capture(self._predict, "predict")
        return self._predict_call(*inputs, sync=sync)

    def _predict(self, *inputs) -> Tensor:
        was = self.net.training
        self.net.eval()
        try:
            with no_grad():
                return self.forward(*inputs)
        finally:
            self.net.train(was)

    def __call__(self, *inputs) -> np.ndarray:
        return self.predict(*inputs)

    def loss(self, inputs, target) -> Tensor:
        """loss_fn(forward(inputs), target) (MSE by default) plus the layers' extra loss terms
        (e.g. a VAE head's KL)."""
        inputs = inputs if isinstance(inputs, tuple | list) else (inputs,)
        out = self.forward(*inputs)
        total = self.loss_fn(out, self._as_tensor(target))
        for extra in self.net.extra_losses():
            total = ops.add(total, extra)
        return total

    def train_step(self, inputs, target, optimizer) -> float:
        """zero_grad, forward, loss backward, optimizer step; returns the loss (one host sync).
        A captured plan per (optimizer, shapes) unless ``eager``."""
        inputs = tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)
        if self.eager:
            return self._train(inputs, target, optimizer).item()
        n, loss_fn = len(inputs), self.loss_fn  # a new loss function is a new plan
        call, opt, fn = self._train_calls.get((id(optimizer), n), (None, None, None))
        if opt is not optimizer or fn is not loss_fn:
            call = self.capture(lambda *t: self._train(t[:n], t[n], optimizer), "train_step")
            self._train_calls[(id(optimizer), n)] = (call, optimizer, loss_fn)
            if len(self._train_calls) > 4:  # forget the oldest optimizer's plans
                old = self._train_calls.pop(next(iter(self._train_calls)))[0]
                self._captured.remove(old)
        return float(call(*inputs, target)[0])

    def _train(self, inputs, target, optimizer) -> Tensor:
        self.zero_grad()
        loss = self.loss(inputs, target)
        loss.backward()
        optimizer.step()
        return loss

    # ---- memory ----------------------------------------------------------------------------
    def memory(self, batch: int | None = None, optimizer=None, input_shapes=None) -> list[dict]:
        """Rows per layer: parameters, gradient and optimizer bytes, and activation bytes
        measured by running one forward+backward at ``batch`` when ``input_shapes`` is given."""
        return memory_table(self, batch, optimizer, input_shapes)

    def summary(self, batch: int | None = None, optimizer=None, input_shapes=None) -> str:
        """The seed course's "space and memory" table, as text."""
        return format_table(self, self.memory(batch, optimizer, input_shapes))

    def save(self, path, optimizer=None, extra: dict | None = None) -> None:
        save_model(self, path, optimizer, extra)

    @classmethod
    def load(cls, path, name: str | None = None, expect: dict | None = None) -> Model:
        """Rebuild a saved model; ``expect`` (an architecture dict) must match if given.
        The file's contents (metadata, optimizer state) are kept in ``file_content``."""
        content = read_model_file(path, expect)
        model = cls(content["architecture"], name=name or content["name"])
        try:
            model.load_parameters(content["params"])
            load_state(model, content["state"])
        except ValueError as exc:
            raise ModelFileError(
                f"{path}: weights do not fit the stored architecture ({exc})") from None
        model.file_content = content
        return model

    def load_weights(self, path) -> dict:
        """Load a saved file's weights into this model (architectures must match); returns
        the file's contents (optimizer state, extra metadata) for the caller."""
        content = read_model_file(path, expect=self.describe())
        self.invalidate_plans()
        self.load_parameters(content["params"])
        load_state(self, content["state"])
        return content
