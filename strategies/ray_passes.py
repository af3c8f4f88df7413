"""Research passes as Ray tasks (``neurofx research --executor ray [--address HOST:PORT]``).

The driver (the process that owns the store) puts the run's setup (bars, feature matrix,
broker, policy options) into Ray's object store once, submits one task per group of passes
(``research.run_group``) and takes the trajectories back in pass order, so the store has one
writer and the nodes need no shared disk: the neural model files travel through the object
store too (:func:`portable_models`).
A group is a pure function of (setup, specs): a task whose worker dies mid-group (killed, node
lost) is run again by Ray (``max_retries``), and the store sees only whole trajectories, the
same bytes as a local run. A worker process keeps its neural models between passes
(``research._WORKER``). Ray is optional: ``pip install neurofx[ray]``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from neurofx.atomic import write_bytes_atomic
from neurofx.cluster import ray_session
from neurofx.collectors.trajectory import Trajectory

MAX_RETRIES = 3  # a pass whose worker died is run again up to this many times
# tests: a file path; the first task to find it missing creates it and kills its own worker
KILL_ONCE_ENV = "NEUROFX_TEST_RAY_KILL_ONCE"
MODEL_FOLDER = "neurofx-ray-models"  # a node's copies of the neural model files (temp dir)


def portable_models(setup) -> dict[str, tuple[str, bytes]]:
    """The neural policy's model files as role -> (file name, bytes), to travel through Ray's
    object store with the setup, so the nodes need no copy of them (names of registered
    architectures need nothing)."""
    out = {}
    for role in ("encoder", "actor"):
        spec = setup.policy_options.get(role)
        if spec is not None and Path(str(spec)).is_file():
            out[role] = (Path(str(spec)).name, Path(str(spec)).read_bytes())
    return out


def with_local_models(setup, models: dict[str, tuple[str, bytes]], folder: Path):
    """``setup`` with its policy options naming local copies of ``models`` in ``folder``
    (one file per content, written once per node and reused)."""
    if not models:
        return setup
    folder.mkdir(parents=True, exist_ok=True)
    options = dict(setup.policy_options)
    for role, (name, data) in models.items():
        path = folder / f"{hashlib.sha256(data).hexdigest()[:16]}-{name}"
        if not path.is_file():
            write_bytes_atomic(path, data)
        options[role] = str(path)
    return dataclasses.replace(setup, policy_options=options)


def _ray_group(run: Callable, setup, group, models) -> list[Trajectory]:
    marker = os.environ.get(KILL_ONCE_ENV)
    if marker and not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os._exit(1)  # a worker dying mid-pass
    setup = with_local_models(setup, models, Path(tempfile.gettempdir()) / MODEL_FOLDER)
    return run(setup, group)


def iter_passes_ray(run: Callable, setup, groups: list[list], jobs: int, address: str = "",
                    ) -> Iterator[tuple[list, list[Trajectory]]]:
    """Run ``run(setup, group)`` for every group of pass specs as Ray tasks (one CPU each;
    ``run`` travels by its importable name) and yield ``(group, trajectories)`` in order.
    Without ``address`` a local Ray instance with ``jobs`` CPUs is started (and shut down at
    the end); with one, the cluster at HOST:PORT is joined."""
    with ray_session(address, jobs) as ray:
        task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_ray_group)
        setup_ref, models_ref = ray.put(setup), ray.put(portable_models(setup))
        refs = [task.remote(run, setup_ref, group, models_ref) for group in groups]
        for group, ref in zip(groups, refs, strict=True):
            trajs = ray.get(ref)
            assert len(trajs) == len(group)
            yield group, trajs
