"""A sweep of malformed inputs through the CLI, as a new user would make them (issue 12):
each gives exit code 2 and a single line on stderr, no traceback, and changes nothing in the
existing store and runs."""

import hashlib

import numpy as np
import pytest

from neurofx import agents
from neurofx.cli import main


@pytest.fixture(scope="module")
def world(tmp_path_factory, small_bars):
    """A store, a run with models and a test report, and bad files beside them."""
    w = tmp_path_factory.mktemp("world")
    bars = small_bars.read_text().splitlines()
    root = ["--set", f"runs.root={str(w / 'runs')!r}", "--set", f"data.file={str(small_bars)!r}"]
    assert main(["research", "--store", str(w / "store"), "--passes", "1", "--jobs", "1",
                 "--start", "2024-01-08", "--end", "2024-01-10", "--min-profit=-1e9", *root]) == 0
    run = w / "runs" / "good"
    for role in ("encoder", "actor"):
        agents.build(role, "baseline", hidden=4).save(run / f"{role}.npz")
    assert main(["test", "--run", "good", "--agent", "ma-cross", "--start", "2024-01-08",
                 "--end", "2024-01-09", *root]) == 0
    nan = agents.build("encoder", "baseline", hidden=4)
    nan.load_parameters({k: np.full_like(v, np.nan) for k, v in nan.named_parameters().items()})
    nan.save(w / "nan_encoder.npz")
    (w / "header_only.csv").write_text(bars[0] + "\n")
    absurd = bars[:30]
    absurd[10] = absurd[10].replace(absurd[10].split(",")[1], "1e200", 1)
    (w / "absurd.csv").write_text("\n".join(absurd) + "\n")
    m5 = [bars[0]] + [f"2024-01-08 {i // 12:02d}:{5 * (i % 12):02d}:00," + ln.split(",", 1)[1]
                      for i, ln in enumerate(bars[1:200])]
    (w / "m5.csv").write_text("\n".join(m5) + "\n")
    (w / "latin1.toml").write_bytes(b"\xff\xfe[broker]\n")
    (w / "a_file").write_text("not a store\n")
    bad_report = w / "bad_report"
    bad_report.mkdir()
    for f in (run / "test").iterdir():
        if f.is_file():
            (bad_report / f.name).write_bytes(f.read_bytes())
    series = bad_report / "series.npz"
    series.write_bytes(series.read_bytes()[:80])
    return w, root


def _research(w, root, *more):
    return ["research", "--store", str(w / "store"), "--passes", "1", "--jobs", "1",
            "--start", "2024-01-08", "--end", "2024-01-10", *root, *more]


def _study(w, root, *more):
    return ["study", "encoder", "--store", str(w / "store"), "--run", "good", "--iterations", "1",
            "--batch", "1", "--seq-len", "4", "--no-progress", "--model", "baseline", *root,
            *more]


def _test(w, root, *more):
    return ["test", "--run", "good", "--agent", "ma-cross", "--start", "2024-01-08", "--end",
            "2024-01-09", *root, *more]


CASES = {
    "research date not in the calendar": lambda w, r: _research(w, r, "--start", "2024-02-30"),
    "research month 13": lambda w, r: _research(w, r, "--start", "2023-13-01"),
    "research date is a word": lambda w, r: _research(w, r, "--start", "tomorrow"),
    "research date in --set": lambda w, r: _research(w, r, "--set", "research.start=2024-02-30"),
    "header-only bar file": lambda w, r: _test(w, r, "--set",
                                               f"data.file={str(w / 'header_only.csv')!r}"),
    "validate header-only": lambda w, r: ["data", "validate", str(w / "header_only.csv")],
    "validate absurd prices": lambda w, r: ["data", "validate", str(w / "absurd.csv")],
    "M5 bars as H1": lambda w, r: _research(w, r, "--set", f"data.file={str(w / 'm5.csv')!r}"),
    "swapped model files": lambda w, r: _research(
        w, r, "--policy", "neural", "--encoder", str(w / "runs/good/actor.npz"),
        "--actor", str(w / "runs/good/encoder.npz")),
    "negative model size": lambda w, r: _study(w, r, "--model-arg", "encoder.hidden=-5"),
    "model size a word": lambda w, r: _study(w, r, "--model-arg", "encoder.hidden=abc"),
    "infinite learning rate": lambda w, r: _study(w, r, "--lr", "inf"),
    "unknown optimizer": lambda w, r: _study(w, r, "--optimizer", "adamx"),
    "model-arg for a role the stage does not train": lambda w, r: _study(
        w, r, "--model-arg", "critic.hidden=4"),
    "corrupted series.npz": lambda w, r: ["report", str(w / "bad_report"), *r],
    "non-UTF-8 config": lambda w, r: _test(w, r, "--config", str(w / "latin1.toml")),
    "config is a folder": lambda w, r: _test(w, r, "--config", str(w)),
    "period past the bars": lambda w, r: _test(w, r, "--end", "2024-02-10"),
    "no such run": lambda w, r: ["test", "--run", "nosuch", *r],
    "NaN weights": lambda w, r: ["test", "--run", "good", "--encoder",
                                 str(w / "nan_encoder.npz"), *r],
    "store path is a file": lambda w, r: ["research", "--store", str(w / "a_file"), *r],
    "argparse: not an integer": lambda w, r: ["research", "--passes", "x", *r],
    "argparse: unknown flag": lambda w, r: ["test", "--run", "good", "--bogus", *r],
}


def _files(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_input_is_one_line_and_changes_nothing(capsys, world, case):
    w, root = world
    before = _files(w)
    capsys.readouterr()
    try:
        rc = main(CASES[case](w, root))
    except SystemExit as exc:  # argparse
        rc = exc.code
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("neurofx"), err
    assert _files(w) == before
