"""`neurofx devices`: list OpenCL platforms/devices and show which one neurofx uses."""

import os

from neurofx.errors import NeurofxError
from neurofx.nn.device import ENV_VAR, list_devices, resolve_device


def add_arguments(parser):
    parser.add_argument("--device", help="device to select: 'P:D' indices or a name substring "
                        "(default: $NEUROFX_DEVICE)")


def run(args):
    devices = list_devices()
    if not devices:
        raise NeurofxError(
            "no OpenCL platform/device found; install a CPU driver with "
            "`pip install pocl-binary-distribution` (Linux x86_64) or your GPU vendor's driver"
        )
    chosen, why = resolve_device(args.device or os.environ.get(ENV_VAR), devices)
    for d in devices:
        mark = "*" if d == chosen else " "
        print(f"{mark} {d}")
    print(f"using [{chosen.key}]: {why}")
    return 0
