"""`neurofx research --executor ray` (issue 13 part 2): a local 2-CPU Ray instance writes the
same store bytes as local processes, with a worker killed mid-pass (retried); without Ray
installed the executor is one line saying how to install it."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from neurofx.cli import main as cli_main
from neurofx.strategies.ray_passes import KILL_ONCE_ENV

SHORT = ["--start", "2023-03-06", "--end", "2023-03-09", "--passes", "4", "--seed", "5",
         "--min-profit=-1e9"]


@pytest.fixture(scope="module")
def bars_file(spring_2023_bars):
    return spring_2023_bars


def _run(tmp_path, bars_file, *args):
    return cli_main(["research", *SHORT, "--set", f'runs.root="{tmp_path / "runs"}"',
                     "--set", f'data.file="{bars_file}"', *args])


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.name != ".neurofx.lock"}


def test_without_ray_the_executor_is_one_line(tmp_path, bars_file, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert _run(tmp_path, bars_file, "--store", str(tmp_path / "s"), "--executor", "ray") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'neurofx[ray]'" in err[0], err
    assert not (tmp_path / "s").exists()


def test_ray_store_is_byte_identical_and_a_killed_worker_is_retried(tmp_path, bars_file,
                                                                    monkeypatch):
    pytest.importorskip("ray")
    assert _run(tmp_path, bars_file, "--store", str(tmp_path / "local"), "--jobs", "1") == 0
    marker = tmp_path / "killed"
    monkeypatch.setenv(KILL_ONCE_ENV, str(marker))
    assert _run(tmp_path, bars_file, "--store", str(tmp_path / "ray"), "--jobs", "2",
                "--executor", "ray") == 0
    assert marker.exists()  # one worker died mid-pass; its pass ran again
    local, ray_ = _digest(tmp_path / "local"), _digest(tmp_path / "ray")
    assert local == ray_ and len(local) == 6  # manifest, matrix, 4 passes


def test_model_files_travel_with_the_setup(tmp_path):
    """A node needs no copy of the neural model files: their bytes go through the object
    store and each node writes one local copy per content (no Ray needed for this part)."""
    from neurofx import agents
    from neurofx.strategies.policies import NeuralPolicy
    from neurofx.strategies.ray_passes import portable_models, with_local_models
    from neurofx.strategies.research import ResearchSetup

    for role in ("encoder", "actor"):
        agents.build(role, "baseline", hidden=4).save(tmp_path / f"{role}.npz")
    setup = ResearchSetup(None, None, "2024-01-08", "2024-01-10", None, "neural",
                          {"encoder": str(tmp_path / "encoder.npz"),
                           "actor": str(tmp_path / "actor.npz"), "stochastic": True})
    models = portable_models(setup)
    assert {r: name for r, (name, _) in models.items()} == {"encoder": "encoder.npz",
                                                            "actor": "actor.npz"}
    node = tmp_path / "node"
    local = with_local_models(setup, models, node)
    for role in ("encoder", "actor"):
        copy = local.policy_options[role]
        assert copy.startswith(str(node)) and copy.endswith(f"-{role}.npz")
        assert Path(copy).read_bytes() == (tmp_path / f"{role}.npz").read_bytes()
    assert local.policy_options["stochastic"] is True
    again = with_local_models(setup, models, node)  # written once, reused
    assert again.policy_options == local.policy_options
    NeuralPolicy(**local.policy_options).check_models("")
    named = ResearchSetup(None, None, "a", "b", None, "neural",
                          {"encoder": "tpm", "actor": "tpm", "stochastic": True})
    assert portable_models(named) == {} and with_local_models(named, {}, node) is named
