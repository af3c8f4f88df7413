"""`neurofx study ... --compare-optimizers A,B --executor ray` (issue 13): one optimizer per
Ray task on a local 2-CPU instance gives the same models and table as the local comparison."""

from __future__ import annotations

import csv

import pytest
from study_fixtures import build_store

from neurofx.cli import main

WALL = {"wall_s", "samples_per_s"}  # wall-clock columns


def _compare(tmp_path, store, root, *more):
    return main(["study", "encoder", "--store", str(store), "--run", "r", "--iterations", "2",
                 "--batch", "2", "--seq-len", "4", "--val-every", "1", "--model", "baseline",
                 "--model-arg", "encoder.hidden=4", "--no-progress", "--compare-optimizers",
                 "adam,sgd", "--set", f"runs.root={str(tmp_path / root)!r}", *more])


def _table(path):
    with open(path, newline="") as fh:
        return [{k: v for k, v in row.items() if k not in WALL} for row in csv.DictReader(fh)]


def test_a_comparison_on_ray_equals_the_local_one(tmp_path):
    pytest.importorskip("ray")
    store = tmp_path / "store"
    build_store(store, n=4, steps=60)
    assert _compare(tmp_path, store, "local") == 0
    assert _compare(tmp_path, store, "ray", "--executor", "ray") == 0
    local, ray = (tmp_path / root / "r" / "compare_encoder" for root in ("local", "ray"))
    for name in ("adam", "sgd"):
        assert (ray / name / "encoder.npz").read_bytes() == \
            (local / name / "encoder.npz").read_bytes()
    assert _table(ray / "comparison.csv") == _table(local / "comparison.csv")
    assert (ray / "comparison.png").is_file()
