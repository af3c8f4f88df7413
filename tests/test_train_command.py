"""`neurofx train`: the research <-> study loop writes rounds.csv and the report, resumes
after Ctrl-C without rerunning what was done, and refuses bad settings in one line."""

from __future__ import annotations

import json
import signal

import pytest

from neurofx.cli import main
from neurofx.collectors.store import TrajectoryStore
from neurofx.pipeline import research, study
from neurofx.reports.rounds import COLUMNS, read_rounds

# a week of bars per pass, baseline MLPs of 8 units, 4 iterations: seconds per step
TINY = ["--rounds", "3", "--passes", "4", "--round-passes", "2", "--jobs", "1",
        "--start", "2024-01-08", "--end", "2024-01-15", "--model", "baseline",
        "--model-arg", "encoder.hidden=8", "--model-arg", "actor.hidden=8",
        "--model-arg", "critic.hidden=8", "--iterations", "4", "--batch", "2", "--seq-len", "10",
        "--val-every", "2", "--no-progress", "--set", "research.min_profit=-1e9",
        "--set", 'test.start="2024-01-22"', "--set", 'test.end="2024-01-26"',
        "--set", "test.baselines=false"]
STEPS = ["research-0", "encoder", "actor-1", "research-1", "actor-2", "research-2", "actor-3",
         "research-3", "test"]


def _argv(root, bars, *more):
    return ["train", "--run", "r", "--data", str(bars), "--set", f"runs.root={root}", *TINY,
            *more]


def _state(root):
    return json.loads((root / "r" / "train_state.json").read_text())


def _without_wall(rows):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, small_bars):
    root = tmp_path_factory.mktemp("train") / "runs"
    assert main(_argv(root, small_bars)) == 0
    return root


def test_train_writes_rounds_report_and_models(full_run, capsys):
    run = full_run / "r"
    assert (run / "rounds.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    rows = read_rounds(run / "rounds.csv")
    assert [r["round"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert r["passes"] == 2 and r["kept"] + r["discarded"] == r["passes"]
        assert r["min_profit_usd"] == 10.0  # the seed's threshold for neural research
        assert r["profit_min_usd"] <= r["profit_median_usd"] <= r["profit_max_usd"]
        assert r["trades_median"] > 0 and r["val_encoder"] > 0 and r["val_critic"] > 0
        assert r["wall_s"] > 0
    # the 4 initial passes (all kept: research.min_profit=-1e9) and each round's kept ones
    assert [r["store_trajectories"] for r in rows] == [
        4 + sum(r["kept"] for r in rows[:k]) for k in (1, 2, 3)]
    for name in ("encoder.npz", "actor.npz", "critic.npz", "test/rounds.png"):
        assert (run / name).is_file(), name
    html = (run / "test" / "report.html").read_text()
    assert "Training rounds" in html and 'id="round-3"' in html
    assert 'alt="Research profits and validation losses per round"' in html
    state = _state(full_run)
    assert state["current"] is None and sorted(state["done"]) == sorted(STEPS)
    store = TrajectoryStore.open(run / "trajectories")
    assert len(store.decided) == len(set(store.decided)) == 4 + 3 * 2
    # regenerating the report keeps the rounds (the run folder's rounds.csv)
    assert main(["report", str(run / "test")]) == 0
    assert 'id="round-1"' in (run / "test" / "report.html").read_text()
    capsys.readouterr()


def test_train_resumes_after_ctrl_c_without_rerunning(full_run, small_bars, tmp_path,
                                                      monkeypatch, capsys):
    root = tmp_path / "runs"
    real_research = research.run_research

    def research_stopping_in_round_2(cfg, command="", on_start=None, on_result=None):
        def hook(spec, traj, added, summary):
            on_result(spec, traj, added, summary)
            if cfg.research.policy == "neural" and cfg.research.seed == 2:
                raise KeyboardInterrupt  # Ctrl-C after round 2's first pass
        return real_research(cfg, command, on_start, hook)

    with monkeypatch.context() as m:
        m.setattr(research, "run_research", research_stopping_in_round_2)
        assert main(_argv(root, small_bars)) == 130
    err = capsys.readouterr().err
    assert "stopped in step research-2" in err and "--resume" in err
    assert _state(root)["current"] == "research-2"
    first = (root / "r" / "rounds.csv").read_text()
    assert len(first.splitlines()) == 2  # header + round 1

    # without --resume or --fresh: one line, nothing touched
    assert main(_argv(root, small_bars)) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "add --resume to continue it, --fresh to start over" in err

    real_run = study.StudyPlan.run

    def study_stopping_at_2(self, on_iteration=None):
        def hook(it):
            if it == 2:
                signal.raise_signal(signal.SIGINT)  # Ctrl-C: finish the batch, checkpoint
        return real_run(self, hook)

    with monkeypatch.context() as m:  # resume: round 2 finishes, Ctrl-C in round 3's study
        m.setattr(study.StudyPlan, "run", study_stopping_at_2)
        assert main(_argv(root, small_bars, "--resume")) == 130
    out, err = capsys.readouterr()
    for step in STEPS[:5]:
        assert f"{step}: done earlier, skipped" in out
    assert "skipped 1 passes the store had decided already" in out
    assert _state(root)["current"] == "actor-3" and "stopped in step actor-3" in err

    assert main(_argv(root, small_bars, "--resume")) == 0
    out = capsys.readouterr().out
    assert "neurofx study actor --store" in out and "--resume --iterations 4" in out
    text = (root / "r" / "rounds.csv").read_text()
    assert text.startswith(first)  # round 1's row as it was written
    rows, want = read_rounds(root / "r" / "rounds.csv"), read_rounds(full_run / "r" / "rounds.csv")
    assert _without_wall(rows) == _without_wall(want)  # as if never interrupted
    store = TrajectoryStore.open(root / "r" / "trajectories")
    assert len(store.decided) == len(set(store.decided)) == 4 + 3 * 2
    assert len(store) == len(TrajectoryStore.open(full_run / "r" / "trajectories"))
    assert sorted(_state(root)["done"]) == sorted(STEPS)


@pytest.mark.parametrize("argv, message", [
    (["--rounds", "0"], "--rounds 0: must be >= 1"),
    (["--round-passes", "-1"], "--round-passes -1: must be >= 0"),
    (["--resume", "--fresh"], "--resume and --fresh exclude each other; pick one"),
    (["--set", "train.min_profit=\"x\""], 'train.min_profit must be a number (USD) or "auto"'),
    (["--resume"], "no train run to resume; run without --resume"),
])
def test_train_bad_settings_one_line(argv, message, tmp_path, capsys):
    rc = main(["train", "--run", "r", "--set", f"runs.root={tmp_path}", *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and "\n" not in err
    assert not (tmp_path / "r" / "trajectories").exists()
