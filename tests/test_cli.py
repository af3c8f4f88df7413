"""The command line's error contract: usage errors, OS errors and input errors are one line on
stderr with exit code 2; the device banner and compiler output only when asked for."""

import errno
import os
import subprocess
import sys

import pytest

from neurofx.cli import main
from neurofx.pipeline import research


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["study", "encoder", "--iterations", "x"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err == ("neurofx study: error: argument --iterations: invalid int value: 'x' "
                   "(see neurofx study --help)\n")
    with pytest.raises(SystemExit):
        main(["nonsense"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("neurofx: error: argument COMMAND: invalid")


@pytest.mark.parametrize("code, strerror, fix", [
    (errno.ENOSPC, "No space left on device", "free disk space and run the command again"),
    (errno.EACCES, "Permission denied", "check the permissions of the file or folder"),
    (errno.EROFS, "Read-only file system", "choose a writable folder (e.g. --set runs.root=...)"),
])
def test_os_errors_are_one_line_naming_the_path(capsys, monkeypatch, code, strerror, fix):
    def fail(cfg):
        raise OSError(code, strerror, "s/x/manifest.json")

    monkeypatch.setattr(research, "store_info", fail)
    assert main(["research", "info", "--store", "s/x"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"neurofx research: error: s/x/manifest.json: {strerror} ({fix})\n"


def _device_stderr(verbose: str) -> str:
    code = "from neurofx.nn.device import get_device; get_device()"
    env = {k: v for k, v in os.environ.items() if k != "NEUROFX_VERBOSE"}
    env["NEUROFX_VERBOSE"] = verbose
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, check=True).stderr


def test_device_banner_only_when_verbose():
    assert _device_stderr("0") == ""
    banner = _device_stderr("1")
    assert banner.startswith("neurofx: OpenCL device [") and banner.count("\n") == 1


def test_kernels_build_without_compiler_warnings(tmp_path):
    """PoCL's warnings (e.g. a float16 passed by value) would reach every user's stderr."""
    code = ("from neurofx.nn.device import get_device, kernel_dir\n"
            "for f in sorted(kernel_dir().glob('*.cl')):\n"
            "    get_device().program(f.name)\n")
    env = {**os.environ, "PYOPENCL_COMPILER_OUTPUT": "1", "PYOPENCL_NO_CACHE": "1",
           "POCL_CACHE_DIR": str(tmp_path), "POCL_KERNEL_CACHE": "0"}
    err = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300, check=True).stderr
    assert "warning" not in err.lower(), err
