"""One OpenCL context and queue per process, program cache and buffer accounting.

The device is chosen explicitly: ``NEUROFX_DEVICE`` (or :func:`select_device`) names it as
``"<platform>:<device>"`` indices (``"0:0"``) or a case-insensitive substring of
``"<platform name> <device name>"``. Without a choice, a single device is used; with several,
GPUs win over CPUs. The device in use and why it was chosen are named on stderr with
``NEUROFX_VERBOSE=1`` (``neurofx --verbose``) and by ``neurofx devices``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import weakref
from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pyopencl as cl

from neurofx.errors import NeurofxError

from .record import Recorder

ENV_VAR = "NEUROFX_DEVICE"
KERNEL_PACKAGE = "neurofx.kernels"

# Kinds of device memory the accounting tracks (the seed course's "space and memory" view).
MEMORY_KINDS = ("parameters", "gradients", "optimizer", "activations", "other")


class KernelBuildError(NeurofxError):
    """An OpenCL program failed to build; carries the .cl file and the compiler log."""

    def __init__(self, filename: str, log: str):
        self.filename = filename
        self.log = log
        first = next((ln for ln in log.splitlines() if "error" in ln.lower()), log.strip()[:200])
        super().__init__(f"kernels/{filename}: OpenCL build failed: {first}")


class NoDeviceError(NeurofxError):
    pass


@dataclass(frozen=True)
class DeviceInfo:
    platform_index: int
    device_index: int
    platform: str
    name: str
    kind: str  # "GPU", "CPU", "ACCELERATOR"

    @property
    def key(self) -> str:
        return f"{self.platform_index}:{self.device_index}"

    def __str__(self) -> str:
        return f"[{self.key}] {self.platform} / {self.name} ({self.kind})"


def list_devices() -> list[DeviceInfo]:
    """Every OpenCL device of every platform, in driver order."""
    try:
        platforms = cl.get_platforms()
    except cl.Error:  # CL_PLATFORM_NOT_FOUND_KHR when no ICD is installed
        platforms = []
    out = []
    for pi, p in enumerate(platforms):
        try:
            devices = p.get_devices()
        except cl.Error:
            continue
        for di, d in enumerate(devices):
            kind = next((k for k in ("GPU", "CPU", "ACCELERATOR")
                         if d.type & getattr(cl.device_type, k)), "OTHER")
            out.append(DeviceInfo(pi, di, p.name.strip(), d.name.strip(), kind))
    return out


def _no_device_error() -> NoDeviceError:
    return NoDeviceError(
        "no OpenCL platform/device found; install a CPU driver with "
        "`pip install pocl-binary-distribution` (Linux x86_64) or your GPU vendor's OpenCL driver"
    )


def resolve_device(spec: str | None, devices: list[DeviceInfo]) -> tuple[DeviceInfo, str]:
    """Pick a device from ``spec`` (index pair or name substring); return it and why."""
    if not devices:
        raise _no_device_error()
    if spec:
        spec = spec.strip()
        matches = [d for d in devices if d.key == spec]
        if not matches:
            low = spec.lower()
            matches = [d for d in devices if low in f"{d.platform} {d.name}".lower()]
        if not matches:
            choices = ", ".join(d.key for d in devices)
            raise NoDeviceError(
                f"{ENV_VAR}={spec!r} matches no OpenCL device; valid choices: {choices} "
                "(see `neurofx devices`)"
            )
        return matches[0], f"chosen by {ENV_VAR}={spec!r}"
    if len(devices) == 1:
        return devices[0], "the only OpenCL device"
    gpus = [d for d in devices if d.kind == "GPU"]
    pick = gpus[0] if gpus else devices[0]
    return pick, f"default among {len(devices)} devices (GPU first); set {ENV_VAR} to choose"


class TrackedBuffer(cl.Buffer):
    """A device buffer the memory ledger can follow (plain ``cl.Buffer`` takes no weakref)."""


class MemoryLedger:
    """Bytes of live device buffers by (kind, owner); buffers unregister when collected."""

    def __init__(self):
        self._lock = threading.Lock()
        self._bytes: dict[tuple[str, str], int] = defaultdict(int)

    def add(self, buf: cl.Buffer, nbytes: int, kind: str, owner: str) -> None:
        if kind not in MEMORY_KINDS:
            raise ValueError(f"unknown memory kind {kind!r}; valid: {', '.join(MEMORY_KINDS)}")
        key = (kind, owner)
        with self._lock:
            self._bytes[key] += nbytes
        weakref.finalize(buf, self._sub, key, nbytes)

    def _sub(self, key, nbytes):
        with self._lock:
            self._bytes[key] -= nbytes
            if self._bytes[key] == 0:
                del self._bytes[key]

    def total(self, kind: str | None = None, owner_prefix: str | None = None) -> int:
        with self._lock:
            return sum(
                n
                for (k, o), n in self._bytes.items()
                if (kind is None or k == kind)
                and (owner_prefix is None or o == owner_prefix or o.startswith(owner_prefix + "."))
            )

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._bytes)


class Device:
    """The process's OpenCL context, in-order queue, program cache and memory ledger."""

    def __init__(self, info: DeviceInfo):
        self.info = info
        platform = cl.get_platforms()[info.platform_index]
        self.cl_device = platform.get_devices()[info.device_index]
        self.context = cl.Context([self.cl_device])
        self.queue = cl.CommandQueue(self.context)
        self.memory = MemoryLedger()
        self._programs: dict[tuple[str, str], cl.Program] = {}
        self._kernels: dict[tuple[str, str, str], cl.Kernel] = {}
        self.fp64 = bool(self.cl_device.double_fp_config)
        self.base_align = max(self.cl_device.mem_base_addr_align // 8, 4)  # bytes
        self.owner = ""  # name buffers are booked under (set by modules during forward)
        # set while a captured plan records a call (neurofx.nn.plan); None otherwise
        self.recorder: Recorder | None = None

    @contextlib.contextmanager
    def owner_scope(self, name: str):
        """Book buffers allocated inside this block under ``name`` (e.g. a layer)."""
        old, self.owner = self.owner, name
        try:
            yield
        finally:
            self.owner = old

    # ---- programs -------------------------------------------------------------------------
    def program(self, filename: str, options: tuple[str, ...] = ()) -> cl.Program:
        """Build ``kernels/<filename>`` once per (file, options) for this process."""
        key = (filename, " ".join(options))
        prg = self._programs.get(key)
        if prg is None:
            src = kernel_source(filename)
            include = str(kernel_dir())
            opts = [*options, "-I", include]
            try:
                prg = cl.Program(self.context, src).build(options=opts)
            except cl.RuntimeError as exc:  # build failure: pyopencl puts the log in the message
                raise KernelBuildError(filename, str(exc)) from None
            self._programs[key] = prg
        return prg

    def kernel(self, filename: str, name: str, options: tuple[str, ...] = ()) -> cl.Kernel:
        """A kernel object, looked up once and reused (pyopencl warns on repeated ``prg.name``)."""
        key = (filename, " ".join(options), name)
        knl = self._kernels.get(key)
        if knl is None:
            knl = cl.Kernel(self.program(filename, options), name)
            self._kernels[key] = knl
        return knl

    # ---- buffers --------------------------------------------------------------------------
    def alloc(self, nbytes: int, kind: str = "activations", owner: str = "") -> cl.Buffer:
        """Allocate an uninitialised device buffer and record it in the ledger."""
        buf = TrackedBuffer(self.context, cl.mem_flags.READ_WRITE, size=max(int(nbytes), 4))
        self.memory.add(buf, max(int(nbytes), 4), kind, owner)
        if self.recorder is not None:
            self.recorder.on_alloc(buf, max(int(nbytes), 4), kind, owner)
        return buf

    def zeros(self, n: int, kind: str = "activations", owner: str = "") -> cl.Buffer:
        buf = self.alloc(4 * n, kind, owner)
        self.fill(buf, 0.0, 0, max(4 * n, 4))
        return buf

    def fill(self, buf: cl.Buffer, value: float, offset: int, nbytes: int) -> None:
        """Enqueue ``buf[offset:offset+nbytes] = value`` (float32 pattern, bytes)."""
        cl.enqueue_fill_buffer(self.queue, buf, np.float32(value), offset, nbytes)
        if self.recorder is not None:
            self.recorder.fill(buf, value, offset, nbytes)

    def copy(self, dst: cl.Buffer, src: cl.Buffer, nbytes: int, dst_offset: int = 0,
             src_offset: int = 0) -> None:
        """Enqueue a device-to-device copy of ``nbytes`` bytes."""
        cl.enqueue_copy(self.queue, dst, src, byte_count=nbytes, dst_offset=dst_offset,
                        src_offset=src_offset)
        if self.recorder is not None:
            self.recorder.copy(dst, src, nbytes, dst_offset, src_offset)

    def to_device(self, array: np.ndarray, kind: str = "activations", owner: str = "") -> cl.Buffer:
        host = np.ascontiguousarray(array, dtype=np.float32)
        if self.recorder is not None:
            self.recorder.refuse(f"host data ({host.shape}) is uploaded inside the call (owner "
                                 f"{owner or self.owner or '?'}): pass it as an input array")
        buf = self.alloc(host.nbytes, kind, owner)
        cl.enqueue_copy(self.queue, buf, host, is_blocking=False)
        # keep the host array alive until the non-blocking copy has been consumed
        buf._neurofx_host_ref = host  # type: ignore[attr-defined]
        return buf

    def to_host(self, buf: cl.Buffer, shape, offset_bytes: int = 0) -> np.ndarray:
        out = np.empty(shape, dtype=np.float32)
        if self.recorder is not None:
            self.recorder.refuse(f"a device value {tuple(np.atleast_1d(shape))} is read on the "
                                 "host inside the call")
        if out.size:
            cl.enqueue_copy(self.queue, out, buf, src_offset=offset_bytes, is_blocking=True)
        return out

    def finish(self) -> None:
        self.queue.finish()

    def __repr__(self) -> str:
        return f"Device({self.info})"


def kernel_dir() -> Path:
    return Path(str(resources.files(KERNEL_PACKAGE)))


def kernel_source(filename: str) -> str:
    path = kernel_dir() / filename
    try:
        return path.read_text()
    except FileNotFoundError:
        raise NeurofxError(f"{path}: kernel source missing; reinstall neurofx") from None


_device: Device | None = None
_device_lock = threading.Lock()


def select_device(spec: str | None = None, quiet: bool = False) -> Device:
    """Create the process's device from ``spec`` (or ``$NEUROFX_DEVICE``); replaces any other."""
    global _device
    with _device_lock:
        info, why = resolve_device(spec or os.environ.get(ENV_VAR), list_devices())
        _device = Device(info)
        if not quiet and os.environ.get("NEUROFX_VERBOSE") == "1":
            print(f"neurofx: OpenCL device {info} ({why})", file=sys.stderr)
        return _device


def get_device() -> Device:
    """The process's device, created on first use."""
    if _device is None:
        return select_device()
    return _device
