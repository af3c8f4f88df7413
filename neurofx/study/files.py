"""Study files: the CSV loss log (read by ``reports.training.read_study_log``), checkpoints
(with the sampler's RNG) and loss-curve PNGs.

Everything is written atomically (temporary name + rename). A checkpoint is committed by its
JSON file, written last: ``checkpoints/<stage>.json`` names the model files of the same
iteration (``<stage>-<iteration>-<part>.npz``, weights + optimizer state + running statistics),
so a crash between two writes leaves the previous checkpoint intact.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from neurofx.atomic import write_bytes_atomic, write_text_atomic
from neurofx.errors import NeurofxError
from neurofx.nn.serialize import ModelFileError

from .targets import TargetScaler

CHECKPOINT_FORMAT = "neurofx-study-checkpoint"
CHECKPOINT_VERSION = 2  # 2: target scalers recorded (critic targets standardised)
CHECKPOINT_DIR = "checkpoints"


# ---- CSV log ----------------------------------------------------------------------------------
def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_log(path: Path, columns: list[str], rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    write_text_atomic(path, buf.getvalue())


# ---- module counters (RNG call counters of Dropout / VAEHead) -----------------------------------
def counters(model) -> dict[str, int]:
    """``calls`` counters of the modules that draw device noise (reproducible after resume)."""
    return {path: int(m.calls) for path, m in model.net.modules()
            if isinstance(getattr(m, "calls", None), int)}


def set_counters(model, values: dict[str, int]) -> None:
    mods = dict(model.net.modules())
    for path, calls in values.items():
        if path in mods and hasattr(mods[path], "calls"):
            mods[path].calls = int(calls)


def snapshot_state(model) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Host copies of the running statistics and noise counters (restored after validation, so
    validation never changes what training does)."""
    return {n: t.numpy() for n, t in model.net.named_state()}, counters(model)


def restore_state(model, snap) -> None:
    state, calls = snap
    for name, tensor in model.net.named_state():
        tensor.assign(state[name])
    set_counters(model, calls)


# ---- checkpoints ------------------------------------------------------------------------------
def checkpoint_json(out_dir: Path, stage: str) -> Path:
    return out_dir / CHECKPOINT_DIR / f"{stage}.json"


def save_checkpoint(out_dir: Path, stage: str, iteration: int, parts: dict, doc: dict) -> None:
    """``parts``: name -> (model, optimizer or None). ``doc``: JSON fields (rng, log, ...)."""
    folder = out_dir / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, (model, optimizer) in parts.items():
        fname = f"{stage}-{iteration:07d}-{name}.npz"
        model.save(folder / fname, optimizer=optimizer, extra={"counters": counters(model)})
        files[name] = fname
    body = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "stage": stage,
            "iteration": iteration, "files": files, **doc}
    write_text_atomic(checkpoint_json(out_dir, stage), json.dumps(body, indent=1) + "\n")
    keep = set(files.values())
    for p in folder.glob(f"{stage}-*.npz"):
        if p.name not in keep:
            p.unlink(missing_ok=True)


def best_model_path(out_dir: Path, stage: str, part: str) -> Path:
    """Where a stage keeps the best weights of ``part`` while it trains; the output file
    (e.g. ``encoder.npz``) is published from it when the run ends or is interrupted, never by a
    run that failed."""
    return out_dir / CHECKPOINT_DIR / f"best-{stage}-{part}.npz"


def publish(src: Path, dst: Path) -> Path:
    """Copy a finished file into place atomically."""
    return write_bytes_atomic(dst, Path(src).read_bytes())


def remove_checkpoint(out_dir: Path, stage: str) -> None:
    """Delete the stage's checkpoint: its JSON first (uncommitted), then its model files."""
    path = checkpoint_json(out_dir, stage)
    path.unlink(missing_ok=True)
    for p in [*path.parent.glob(f"{stage}-*.npz"), *path.parent.glob(f"best-{stage}-*.npz")]:
        p.unlink()


def read_checkpoint(out_dir: Path, stage: str) -> dict:
    path = checkpoint_json(out_dir, stage)
    if not path.is_file():
        raise NeurofxError(f"{path}: no {stage} checkpoint to resume; run without --resume")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NeurofxError(f"{path}: not a readable checkpoint ({exc}); start a new run") from None
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
        raise NeurofxError(f"{path}: field 'format' is not '{CHECKPOINT_FORMAT}'")
    if doc.get("version") != CHECKPOINT_VERSION:
        raise NeurofxError(f"{path}: field 'version' is {doc.get('version')!r}, this neurofx "
                           f"reads version {CHECKPOINT_VERSION}; start a new run")
    for key in ("iteration", "files", "rng", "log", "settings"):
        if key not in doc:
            raise NeurofxError(f"{path}: field '{key}' is missing; start a new run")
    doc["_path"] = str(path)
    return doc


def check_scalers(doc: dict, parts: dict, store: str) -> None:
    """The target scalers recorded in a checkpoint (``target_scalers``: part name -> scaler)
    must equal those the stage fitted now on the same training trajectories of ``store`` (they
    do unless the store's files changed content). ``parts``: name -> ``stage.Part``."""
    saved = doc.get("target_scalers")
    for name, part in parts.items():
        if part.scaler is None:
            continue
        where = f"target_scalers.{name}"
        have = TargetScaler.from_dict(saved.get(name) if isinstance(saved, dict) else None,
                                      doc["_path"], size=part.scaler.size,
                                      fix="start over with --fresh", field=where)
        if have != part.scaler:
            raise NeurofxError(f"{doc['_path']}: field '{where}' differs from the scaler fitted "
                               f"on the training trajectories of {store} (their content "
                               f"changed); start over with --fresh")


def load_part(out_dir: Path, doc: dict, name: str, model, optimizer) -> None:
    """Restore one part of a checkpoint into ``model`` / ``optimizer`` (architecture checked)."""
    fname = doc["files"].get(name)
    if fname is None:
        raise ModelFileError(f"{doc['_path']}: field 'files' has no '{name}'; start a new run")
    path = out_dir / CHECKPOINT_DIR / fname
    try:
        content = model.load_weights(path)
    except ValueError as exc:
        raise ModelFileError(f"{path}: weights do not fit the model ({exc})") from None
    if optimizer is not None:
        if content["optim"] is None:
            raise ModelFileError(f"{path}: holds no optimizer state; start a new run")
        if content["optim"]["type"] != type(optimizer).__name__:
            raise ModelFileError(f"{path}: optimizer state is {content['optim']['type']}, not "
                                 f"{type(optimizer).__name__}; resume with the same --optimizer")
        optimizer.load_state_dict(content["optim"]["state"])
    set_counters(model, content["meta"].get("counters", {}))
