"""One writer per store and run folder (two real processes, synchronised by a pipe), test
outputs committed as a unit, and periods the bars do not cover refused (issue 12)."""

import contextlib
import errno
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from neurofx import agents
from neurofx.atomic import atomic_folder
from neurofx.cli import main
from neurofx.collectors.store import TrajectoryStore
from neurofx.pipeline import test as test_step

HOLDER = textwrap.dedent("""
    import sys
    from neurofx.locks import exclusive
    with exclusive(sys.argv[1], "folder"):
        print("locked", flush=True)
        sys.stdin.readline()  # hold the lock until the test says so
""")


class Holder:
    """A second process holding a folder's lock until released (or killed)."""

    def __init__(self, folder):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline() == "locked\n"  # the handshake: it holds the lock

    def release(self):
        self.proc.communicate("\n", timeout=60)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=60)


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def research_argv(tmp_path, small_bars):
    return ["research", "--store", tmp_path / "store", "--passes", "1", "--jobs", "1",
            "--start", "2024-01-08", "--end", "2024-01-10", "--min-profit=-1e9",
            "--set", f"runs.root={str(tmp_path / 'runs')!r}",
            "--set", f"data.file={str(small_bars)!r}"]


def test_a_second_research_writer_is_refused_naming_the_holder(capsys, tmp_path,
                                                                 research_argv):
    assert _run(capsys, *research_argv)[0] == 0
    manifest = (tmp_path / "store" / "manifest.json").read_bytes()
    holder = Holder(tmp_path / "store")
    try:
        rc, out, err = _run(capsys, *research_argv)
        assert rc == 2 and out == ""
        assert _one_line(err) == (
            f"neurofx research: error: {tmp_path / 'store'}: the trajectory store is being "
            f"written by another neurofx process (PID {holder.proc.pid}); wait for it to "
            "finish, or stop it")
        assert (tmp_path / "store" / "manifest.json").read_bytes() == manifest
    finally:
        holder.release()
    rc, out, _ = _run(capsys, *research_argv)  # released: the next writer goes on
    assert rc == 0 and "store" in out


def test_a_killed_holder_leaves_no_stale_lock(capsys, tmp_path, research_argv):
    holder = Holder(tmp_path / "store")
    assert _run(capsys, *research_argv)[0] == 2
    holder.kill()
    rc, out, err = _run(capsys, *research_argv)
    assert rc == 0, err
    assert out.startswith("passes 1: kept 1")


def test_runs_on_different_stores_do_not_wait_for_each_other(capsys, tmp_path, research_argv):
    holder = Holder(tmp_path / "other-store")
    try:
        assert _run(capsys, *research_argv)[0] == 0
    finally:
        holder.release()


def _test_argv(tmp_path, small_bars, *more):
    return ["test", "--run", "r", "--agent", "ma-cross", "--start", "2024-01-08", "--end",
            "2024-01-12", "--set", f"runs.root={str(tmp_path)!r}",
            "--set", f"data.file={str(small_bars)!r}", *more]


def test_a_second_writer_of_a_run_folder_is_refused(capsys, tmp_path, small_bars):
    holder = Holder(tmp_path / "r")
    try:
        rc, _, err = _run(capsys, *_test_argv(tmp_path, small_bars))
        assert rc == 2 and "the run folder is being written by another neurofx process " \
                           f"(PID {holder.proc.pid})" in _one_line(err)
        assert not (tmp_path / "r" / "test").exists()
    finally:
        holder.release()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_a_failed_test_run_leaves_the_old_report_whole(capsys, tmp_path, small_bars,
                                                       monkeypatch, code):
    assert _run(capsys, *_test_argv(tmp_path, small_bars))[0] == 0
    folder = tmp_path / "r" / "test"
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    real = test_step.write_backtest_report

    def fail_half_way(out_dir, *args, **kwargs):
        real(out_dir, *args, **kwargs)  # every file of the new report is written ...
        raise OSError(code, os.strerror(code), str(out_dir / "report.html"))  # ... then a fault

    monkeypatch.setattr(test_step, "write_backtest_report", fail_half_way)
    rc, out, err = _run(capsys, *_test_argv(tmp_path, small_bars, "--end", "2024-01-19"))
    assert rc == 2 and os.strerror(code) in _one_line(err)
    after = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before  # the old report, byte for byte, and nothing of the new one
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [".neurofx.lock", "test"]


def test_atomic_folder_swaps_whole_folders(tmp_path):
    target = tmp_path / "out"
    with atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (target / "a.txt").read_text() == "1"
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("2")
        (tmp / "b.txt").write_text("2")
        raise RuntimeError("killed")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    assert (target / "a.txt").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_period_past_the_last_bar_is_refused(capsys, tmp_path, small_bars):
    rc, _, err = _run(capsys, *_test_argv(tmp_path, small_bars, "--start", "2024-01-25",
                                          "--end", "2024-02-10"))
    assert rc == 2 and _one_line(err) == (
        f"neurofx test: error: {small_bars}: the file does not cover all of 2024-01-25 to "
        "2024-02-10; the file covers 2023-12-01 to 2024-01-31, pass --start/--end inside "
        "that range")


def test_swapped_model_files_are_one_line_in_research_as_in_test(capsys, tmp_path,
                                                                 research_argv):
    for role in ("encoder", "actor"):
        agents.build(role, "baseline", hidden=4).save(tmp_path / f"{role}.npz")
    rc, _, err = _run(capsys, *research_argv, "--policy", "neural", "--encoder",
                      tmp_path / "actor.npz", "--actor", tmp_path / "encoder.npz")
    line = _one_line(err)
    assert rc == 2 and line.startswith(
        f"neurofx research: error: {tmp_path / 'actor.npz'}: an encoder of another "
        "architecture (it does not take the 1080-value state")
    assert line.endswith("; give --encoder an encoder file and --actor an actor file "
                         "('neurofx study encoder|actor' write them), or a model name")
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_study_that_fails_part_way_leaves_no_model_that_looks_trained(capsys, tmp_path,
                                                                          monkeypatch, code):
    from study_fixtures import build_store

    from neurofx.study import files

    build_store(tmp_path / "store", n=4, steps=60)
    real = files.save_checkpoint

    def disk_full(out_dir, stage, iteration, *args):
        if iteration >= 2:  # the first checkpoint after training began
            raise OSError(code, os.strerror(code), str(out_dir / "checkpoints" / "x.npz"))
        return real(out_dir, stage, iteration, *args)

    monkeypatch.setattr(files, "save_checkpoint", disk_full)
    argv = ["study", "encoder", "--store", tmp_path / "store", "--run", "r", "--iterations", "4",
            "--batch", "2", "--seq-len", "4", "--val-every", "1", "--checkpoint-every", "2",
            "--model", "baseline", "--model-arg", "encoder.hidden=4", "--no-progress",
            "--set", f"runs.root={str(tmp_path / 'runs')!r}"]
    rc, _, err = _run(capsys, *argv)
    assert rc == 2 and os.strerror(code) in _one_line(err)
    assert not (tmp_path / "runs" / "r" / "encoder.npz").exists()
    monkeypatch.setattr(files, "save_checkpoint", real)
    rc, _, err = _run(capsys, *argv, "--fresh")  # space again: the run completes
    assert rc == 0, err
    assert (tmp_path / "runs" / "r" / "encoder.npz").is_file()


def test_a_corrupted_series_file_is_one_line_for_report(capsys, tmp_path, small_bars):
    assert _run(capsys, *_test_argv(tmp_path, small_bars))[0] == 0
    series = tmp_path / "r" / "test" / "series.npz"
    series.write_bytes(series.read_bytes()[:100])
    rc, _, err = _run(capsys, "report", tmp_path / "r" / "test")
    assert rc == 2 and _one_line(err).startswith(
        f"neurofx report: error: {series}: not a readable .npz file (")


def test_bars_of_another_timeframe_are_refused_unless_stated(capsys, tmp_path, small_bars):
    lines = small_bars.read_text().splitlines()
    t0 = pd.Timestamp("2024-01-08")
    rows = [f"{t0 + pd.Timedelta(minutes=5 * i):%Y-%m-%d %H:%M:%S}," + ln.split(",", 1)[1]
            for i, ln in enumerate(lines[1:700])]
    m5 = tmp_path / "m5.csv"
    m5.write_text("\n".join([lines[0], *rows]) + "\n")
    argv = ["test", "--run", "r", "--agent", "ma-cross", "--start", "2024-01-08", "--end",
            "2024-01-09", "--set", f"runs.root={str(tmp_path)!r}", "--set",
            f"data.file={str(m5)!r}"]
    rc, _, err = _run(capsys, *argv)
    assert rc == 2 and _one_line(err) == (
        f"neurofx test: error: {m5}: its bars are M5 apart, the commands expect H1 "
        "(data.timeframe); use an H1 file, or state the file's timeframe with --set "
        "data.timeframe=M5")
    assert not (tmp_path / "r").exists()
    rc, out, err = _run(capsys, *argv, "--set", "data.timeframe=M5")
    assert rc == 0, err
    assert out.splitlines()[0] == "r: SMA-crossover demo, EURUSD M5, 2024-01-08 to 2024-01-09"


def test_a_rerun_skips_the_passes_the_store_decided(capsys, tmp_path, research_argv):
    argv = [*research_argv[:4], "3", *research_argv[5:], "--min-profit", "0"]
    rc, out, _ = _run(capsys, *argv)
    assert rc == 0
    store = TrajectoryStore.open(tmp_path / "store")
    kept = len(store)
    assert len(store.decided) == 3 and kept < 3  # losing passes are decided, not kept
    manifest = (tmp_path / "store" / "manifest.json").read_bytes()
    rc, out, _ = _run(capsys, *argv)
    assert rc == 0 and out.splitlines()[:2] == [
        "passes 0: kept 0, discarded 0",
        "skipped 3 passes the store had decided already (same policy, seed and period)"]
    assert (tmp_path / "store" / "manifest.json").read_bytes() == manifest
    rc, out, _ = _run(capsys, *[a if a != "3" else "4" for a in argv])
    assert rc == 0 and out.startswith("passes 1: ")


def test_killed_parallel_research_leaves_no_tracebacks(tmp_path, small_bars):
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "neurofx.cli", "research", "--store", str(store), "--passes",
           "200", "--jobs", "2", "--start", "2024-01-08", "--end", "2024-01-20",
           "--min-profit=-1e9", "--set", f"runs.root={str(tmp_path / 'runs')!r}",
           "--set", f"data.file={str(small_bars)!r}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        manifest = store / "manifest.json"
        while not (manifest.exists() and manifest.read_text().count('"steps"') >= 2):
            assert proc.poll() is None, proc.stderr.read()  # the workers are passing
        proc.send_signal(signal.SIGKILL)  # the parent dies; its two workers are orphaned
        proc.wait(timeout=60)
        err = proc.stderr.read()  # EOF: every process holding the pipe (the workers) is gone
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert len(TrajectoryStore.open(store)) >= 2


def test_a_model_with_nan_weights_is_named(capsys, tmp_path, small_bars):
    enc = agents.build("encoder", "baseline", hidden=4)
    enc.load_parameters({name: np.full_like(v, np.nan)
                         for name, v in enc.named_parameters().items()})
    enc.save(tmp_path / "encoder.npz")
    agents.build("actor", "baseline", hidden=4).save(tmp_path / "actor.npz")
    rc, _, err = _run(capsys, "test", "--run", "r", "--encoder", tmp_path / "encoder.npz",
                      "--actor", tmp_path / "actor.npz", "--set", f"runs.root={str(tmp_path)!r}",
                      "--set", f"data.file={str(small_bars)!r}")
    assert rc == 2 and _one_line(err).startswith(
        f"neurofx test: error: {tmp_path / 'encoder.npz'}: the model computes NaN or infinite "
        "values (its weights are not finite: a diverged training?)")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_a_research_that_cannot_write_keeps_the_store(capsys, tmp_path, research_argv,
                                                      monkeypatch, code):
    from neurofx.collectors import store as store_module

    assert _run(capsys, *research_argv)[0] == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "store").iterdir()}

    def fail(path, data):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(store_module, "write_bytes_atomic", fail)
    rc, _, err = _run(capsys, *[a if a != "1" else "3" for a in research_argv])
    assert rc == 2 and os.strerror(code) in _one_line(err)
    after = {p.name: p.read_bytes() for p in (tmp_path / "store").iterdir()}
    assert after == before
