"""``neurofx study ... --compare-optimizers A,B --executor ray``: one optimizer per Ray task.

Each task trains its optimizer's stage on a Ray worker from the dataset and settings the driver
put into the object store (and, for the actor stage, the run's encoder file's bytes), writing
into the same absolute folder as a local comparison, and returns its summary and the files it
wrote; the driver (the run folder's one writer) writes those files into
``<run>/compare_<stage>/<optimizer>/`` and the comparison table and chart, so nodes need no
shared disk. Training is deterministic on a given device, so a Ray comparison gives the same
models as a local one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from neurofx.atomic import write_bytes_atomic
from neurofx.cluster import ray_session

from .actor import ActorStage
from .data import Dataset
from .encoder import ENCODER_FILE, EncoderStage
from .settings import Settings
from .stage import Stage
from .trainer import Summary, Trainer


def _train(settings: Settings, data: Dataset, encoder: bytes | None
           ) -> tuple[Summary, dict[str, bytes]]:
    """A Ray task: train one optimizer's stage; its summary and output files (relative path
    -> bytes)."""
    if encoder is not None and not (settings.run_dir / ENCODER_FILE).is_file():
        write_bytes_atomic(settings.run_dir / ENCODER_FILE, encoder)  # a node without the run
    stage = (EncoderStage if settings.stage == "encoder" else ActorStage)(settings, data)
    summary = Trainer(stage).run()
    out = settings.out_dir
    return summary, {str(p.relative_to(out)): p.read_bytes()
                     for p in sorted(out.rglob("*")) if p.is_file()}


def train_on_ray(stages: list[Stage], data: Dataset, address: str = "", cpus: int = 1
                 ) -> list[Summary]:
    """Train every stage's settings as a Ray task (one CPU each) and write each task's files
    into its output folder here; the summaries in the stages' order."""
    settings = [dataclasses.replace(s.settings, out=str(Path(s.settings.out_dir).resolve()),
                                    runs_root=str(Path(s.settings.runs_root).resolve()),
                                    progress=False) for s in stages]
    encoder = settings[0].run_dir / ENCODER_FILE
    encoder_bytes = encoder.read_bytes() if settings[0].stage == "actor" else None
    with ray_session(address, cpus) as ray:
        task = ray.remote(num_cpus=1)(_train)
        data_ref = ray.put(data)
        refs = [task.remote(s, data_ref, encoder_bytes) for s in settings]
        summaries = []
        for s, ref in zip(settings, refs, strict=True):
            summary, files = ray.get(ref)
            for rel, blob in files.items():
                write_bytes_atomic(s.out_dir / rel, blob)
            summaries.append(summary)
    return summaries
