"""Device selection, build errors and the memory ledger."""

import numpy as np
import pytest

from neurofx.cli import main
from neurofx.nn.device import (
    DeviceInfo,
    KernelBuildError,
    NoDeviceError,
    get_device,
    resolve_device,
)

CPU = DeviceInfo(0, 0, "Portable Computing Language", "pthread-cpu", "CPU")
GPU = DeviceInfo(1, 0, "NVIDIA CUDA", "H100", "GPU")


def test_no_platform_names_the_pip_fix():
    with pytest.raises(NoDeviceError, match="pip install pocl-binary-distribution"):
        resolve_device(None, [])


def test_choice_by_index_or_name_and_bad_choice_lists_valid_ones():
    assert resolve_device("1:0", [CPU, GPU])[0] == GPU
    assert resolve_device("pthread", [CPU, GPU])[0] == CPU
    with pytest.raises(NoDeviceError, match=r"NEUROFX_DEVICE='tpu' matches no OpenCL device; "
                                            r"valid choices: 0:0, 1:0"):
        resolve_device("tpu", [CPU, GPU])


def test_default_is_never_silent():
    dev, why = resolve_device(None, [CPU, GPU])
    assert dev == GPU and "set NEUROFX_DEVICE to choose" in why
    assert resolve_device(None, [CPU])[1] == "the only OpenCL device"


def test_devices_command_marks_the_device_in_use(capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert out.count("*") == 1 and "using [" in out
    assert main(["devices", "--device", "no-such-device"]) == 2
    assert "matches no OpenCL device" in capsys.readouterr().err


def test_kernel_build_error_names_file_and_log(tmp_path, monkeypatch):
    import neurofx.nn.device as device_mod

    (tmp_path / "broken.cl").write_text("__kernel void k(__global float* x) { x[0] = y; }\n")
    monkeypatch.setattr(device_mod, "kernel_dir", lambda: tmp_path)
    with pytest.raises(KernelBuildError, match=r"kernels/broken.cl: OpenCL build failed") as exc:
        get_device().program("broken.cl")
    assert "y" in exc.value.log


def test_programs_are_built_once_per_process():
    dev = get_device()
    assert dev.kernel("elementwise.cl", "act_fwd") is dev.kernel("elementwise.cl", "act_fwd")
    assert dev.program("elementwise.cl") is dev.program("elementwise.cl")


def test_memory_ledger_follows_buffer_lifetimes():
    dev = get_device()
    before = dev.memory.total("activations", "ledger-test")
    buf = dev.alloc(4096, "activations", "ledger-test")
    assert dev.memory.total("activations", "ledger-test") == before + 4096
    del buf
    assert dev.memory.total("activations", "ledger-test") == before
    with pytest.raises(ValueError, match="unknown memory kind"):
        dev.alloc(4, "weights", "x")
    assert np.isfinite(dev.base_align)
