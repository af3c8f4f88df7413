"""Atomic file writes: the one way neurofx puts a file on disk.

A file is written under a temporary name in its own folder, flushed to disk (``fsync``) and
renamed over the target with ``os.replace``; a reader sees the old file or the whole new one,
never a half-written one. Temporary names start with :data:`TEMP_PREFIX` (see
:func:`is_temp_name`), so a folder's owner can recognise and delete what a killed writer left.
The temporary file is made by the writer with a plain ``open``, so it gets the mode of any new
file (umask), not ``mkstemp``'s 0600, and keeps it through the rename.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from neurofx.errors import NeurofxError

TEMP_PREFIX = ".tmp-"


def is_temp_name(name: str) -> bool:
    """True for a file name :func:`atomic_path` makes (a leftover if no writer is running)."""
    return name.startswith(TEMP_PREFIX)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` for the caller to write; commit it on success.

    The name is unique per process and call (``.tmp-<pid>-<random>-<name>``, so it keeps the
    suffix of ``path``). After the ``with`` body the file is fsynced and renamed over ``path``;
    if the body or the commit raises, the temporary file is removed. Parent folders are made.
    The body must create the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{path.name}")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the data reaches the disk before the rename can
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``path`` for the caller to fill; after the
    ``with`` body it replaces ``path`` as a whole.

    The old folder is renamed aside, the new one renamed into place and the old one deleted, so
    a reader sees the old folder or the new one, never a mix of both (for a moment, none). If
    the body raises, the temporary folder is removed and ``path`` is untouched. Leftovers of a
    killed writer (names starting with :data:`TEMP_PREFIX`) are removed by the next writer, so
    the caller must be the folder's only writer (see :mod:`neurofx.locks`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in path.parent.glob(f"{TEMP_PREFIX}*-{path.name}"):
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    tag = f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    tmp, aside = path.with_name(f"{tag}-{path.name}"), path.with_name(f"{tag}-old-{path.name}")
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            os.rename(path, aside)
        os.rename(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if aside.exists() and not path.exists():
            os.rename(aside, path)  # the swap failed half-way: the old folder goes back
        raise
    shutil.rmtree(aside, ignore_errors=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically (no newline translation)."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj, *, indent: int = 2,
                      sort_keys: bool = True, allow_nan: bool = False) -> Path:
    """Write ``obj`` as JSON plus a final newline, atomically.

    Non-finite floats raise ``ValueError`` unless ``allow_nan`` (they are not JSON); make the
    values JSON-safe first (:func:`json_safe`) where they may occur.
    """
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, allow_nan=allow_nan)
    return write_text_atomic(path, text + "\n")


def json_safe(value, where: str = "value"):
    """Turn floats, numpy scalars/arrays and paths into JSON-safe values: ``nan`` -> ``null``,
    ``inf`` -> ``"inf"``, ``-inf`` -> ``"-inf"`` (strict JSON has no non-finite floats), numpy
    integers -> int, arrays and tuples -> lists, paths -> str, mapping keys -> str; any other
    type raises NeurofxError naming ``where``."""
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        x = float(value)
        if math.isnan(x):
            return None
        return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.ndarray):
        return [json_safe(v, where) for v in value.tolist()]
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise NeurofxError(f"{where}: {type(value).__name__} cannot be stored in JSON; "
                       "pass numbers, strings, lists or dicts")


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (the renames into it) to disk; a no-op where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
