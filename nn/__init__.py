"""neurofx.nn: the OpenCL neural engine (device, tensors, autograd ops, layers, optimizers)."""

from .device import get_device, list_devices, select_device
from .layers import LSTM, BatchNorm, Conv1D, VAEHead
from .model import Model
from .module import (
    LAYERS,
    Activation,
    Concat,
    Dense,
    Dropout,
    Module,
    Sequential,
    build_module,
)
from .tensor import Parameter, StateTensor, Tensor, no_grad

__all__ = [
    "LAYERS", "LSTM", "Activation", "BatchNorm", "Concat", "Conv1D", "Dense", "Dropout", "Model",
    "Module", "Parameter", "VAEHead",
    "Sequential", "StateTensor", "Tensor", "build_module", "get_device", "list_devices", "no_grad",
    "select_device",
]
