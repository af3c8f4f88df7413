"""Model files without pickle: one ``.npz`` holding a format tag and version, the architecture
as JSON, the weights, and optionally optimizer state and metadata. Written atomically."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from neurofx.atomic import atomic_path
from neurofx.errors import NeurofxError

FORMAT = "neurofx-model"
VERSION = 1


class ModelFileError(NeurofxError):
    pass


def _json_array(obj) -> np.ndarray:
    return np.array(json.dumps(obj, sort_keys=True))


def save_model(model, path, optimizer=None, extra: dict | None = None) -> None:
    path = Path(path)
    arrays = {
        "__format__": np.array(FORMAT),
        "__version__": np.array(VERSION),
        "__name__": np.array(model.name),
        "architecture": _json_array(model.describe()),
        "meta": _json_array(extra or {}),
    }
    for name, value in model.named_parameters().items():
        arrays[f"param/{name}"] = value
    for name, tensor in model.net.named_state():
        arrays[f"state/{name}"] = tensor.numpy()
    if optimizer is not None:
        state = optimizer.state_dict()
        scalars = {}
        for key, value in state.items():
            if isinstance(value, np.ndarray):
                arrays[f"optim/{key}"] = value
            else:
                scalars[key] = value
        arrays["optim/__scalars__"] = _json_array(scalars)
        arrays["optim/__type__"] = np.array(type(optimizer).__name__)
    write_npz_atomic(path, arrays)


def write_npz_atomic(path: Path, arrays: dict) -> None:
    """np.savez to ``path`` atomically (:func:`neurofx.atomic.atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def read_model_file(path, expect: dict | None = None) -> dict:
    """Read and validate a model file: {"name", "architecture", "params", "optim", "meta"}."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: model file not found; train one first (neurofx study)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError) as exc:
        raise ModelFileError(f"{path}: not a readable neurofx model file ({type(exc).__name__}: "
                             f"truncated or corrupt); re-save or retrain it") from None
    if str(data.get("__format__", "")) != FORMAT:
        raise ModelFileError(f"{path}: not a neurofx model file (no '{FORMAT}' tag)")
    version = int(data["__version__"])
    if version != VERSION:
        raise ModelFileError(f"{path}: model file format version {version}, this neurofx reads "
                             f"version {VERSION}; retrain or use a matching neurofx release")
    arch = json.loads(str(data["architecture"]))
    if expect is not None and arch != expect:
        raise ModelFileError(f"{path}: written for another architecture ({_arch_label(arch)}) than "
                             f"the one expected ({_arch_label(expect)}); retrain with the current "
                             "model settings or select the matching model")
    params = {k[len("param/"):]: v for k, v in data.items() if k.startswith("param/")}
    state = {k[len("state/"):]: v for k, v in data.items() if k.startswith("state/")}
    optim = None
    if "optim/__type__" in data:
        optim = {k[len("optim/"):]: v for k, v in data.items()
                 if k.startswith("optim/") and not k.startswith("optim/__")}
        optim.update(json.loads(str(data["optim/__scalars__"])))
        optim = {"type": str(data["optim/__type__"]), "state": optim}
    return {"name": str(data["__name__"]), "architecture": arch, "params": params,
            "state": state, "optim": optim, "meta": json.loads(str(data["meta"]))}


def _arch_label(arch: dict) -> str:
    text = json.dumps(arch, sort_keys=True)
    return text if len(text) < 80 else text[:77] + "..."


def load_state(model, state: dict) -> None:
    """Assign saved StateTensors (running statistics) by name; names and shapes must match."""
    own = dict(model.net.named_state())
    if set(own) != set(state):
        raise ValueError(f"state tensors differ: file {sorted(state)[:4]}, model {sorted(own)[:4]}")
    for name, tensor in own.items():
        if tuple(state[name].shape) != tensor.shape:
            raise ValueError(f"state {name}: shape {state[name].shape} != {tensor.shape}")
        tensor.assign(state[name])
