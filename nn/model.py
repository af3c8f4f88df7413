"""A trainable model: a module tree bound to one flat parameter store, with the public API.

``named_parameters()`` / ``load_parameters()`` exchange host copies by stable dotted names;
``model(x)`` / ``predict(x)`` return numpy arrays; ``train_step(x, y, optimizer)`` runs forward,
MSE backward and one optimizer step with a single host synchronisation (reading the loss).
"""

from __future__ import annotations

import numpy as np

from . import ops
from .device import Device, get_device
from .module import Module, build_module
from .parameters import ParameterStore
from .serialize import ModelFileError, load_state, read_model_file, save_model
from .summary import format_table, memory_table
from .tensor import Tensor, no_grad


class Model:
    """Owns a module tree and its parameters on one device."""

    def __init__(self, net: Module | dict, name: str = "model", device: Device | None = None,
                 loss_fn=None):
        """``loss_fn(prediction, target) -> (1,)-tensor`` defaults to ``ops.mse_loss``."""
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
        self.net.reset_state()

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

    def predict(self, *inputs) -> np.ndarray:
        """Inference in eval mode without a graph; returns a host array."""
        was = self.net.training
        self.net.eval()
        try:
            with no_grad():
                return self.forward(*inputs).numpy()
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
        """zero_grad, forward, loss backward, optimizer step; returns the loss (one host sync)."""
        self.zero_grad()
        loss = self.loss(inputs, target)
        loss.backward()
        optimizer.step()
        return loss.item()

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
        self.load_parameters(content["params"])
        load_state(self, content["state"])
        return content
