"""One writer per folder: an advisory lock held by a command for as long as it writes a
trajectory store or a run folder.

The lock is ``fcntl.flock`` on the file :data:`LOCK_NAME` in the folder, which also records the
holder's PID for the message a second writer gets. The operating system releases the lock when
its holder exits in any way (even ``kill -9``), so a lock never goes stale; the file itself
stays and is reused. Readers take no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from neurofx.errors import NeurofxError

LOCK_NAME = ".neurofx.lock"


class FolderInUse(NeurofxError):
    """Another process holds the folder's lock."""


@contextlib.contextmanager
def exclusive(folder: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold ``folder``'s lock (the folder is made if needed) for the ``with`` body; a second
    holder gets :class:`FolderInUse` naming ``what`` (e.g. "trajectory store") and the PID of
    the process that has it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise FolderInUse(f"{folder}: the {what} is being written by another neurofx "
                              f"process (PID {holder}); wait for it to finish, or stop it"
                              ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        try:
            yield path
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
