"""Ray, the optional cluster engine (``pip install neurofx[ray]``): importing it with a one-line
error when it is missing, and one session for a command (a local instance or a cluster)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from neurofx.errors import NeurofxError

RAY_INSTALL = ("--executor ray needs Ray, which is not installed: pip install 'neurofx[ray]' "
               "(or pip install ray), or use --executor local")


def import_ray():
    """The ``ray`` module, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise NeurofxError(RAY_INSTALL) from None
    return ray


@contextlib.contextmanager
def ray_session(address: str = "", cpus: int = 1) -> Iterator[object]:
    """Yield ``ray`` connected to the cluster at ``address`` (HOST:PORT), or to a local
    instance with ``cpus`` CPUs started here and shut down at the end; an instance that is
    already running in this process is used as it is. Workers get the ``NEUROFX_*``
    environment (the device banner off)."""
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        env = {"env_vars": {k: v for k, v in os.environ.items()
                            if k.startswith("NEUROFX_")} | {"NEUROFX_VERBOSE": "0"}}
        kwargs = {"address": address} if address else {"num_cpus": max(cpus, 1)}
        try:
            ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                     runtime_env=env, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise NeurofxError(f"--address {address or '(local)'}: cannot start or reach a Ray "
                               f"cluster ({str(err).splitlines()[0]}); start one with "
                               f"'ray start --head' (docs/research.md)") from None
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()
