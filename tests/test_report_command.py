"""`neurofx report`: regenerate one run exactly, compare runs, training logs, --open."""

import csv
import json
import math
import re

import pytest

from neurofx.cli import main

KEYS = ("total_net_profit_usd", "total_trades", "profit_factor", "equity_drawdown_maximal_usd")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_bars):
    """Two short ma-cross runs that differ in one setting: the commission per lot and side."""
    root = tmp_path_factory.mktemp("runs")
    bars = small_bars
    for name, commission in (("cheap", 3.5), ("dear", 7.0)):
        rc = main(["test", "--run", name, "--agent", "ma-cross", "--start", "2024-01-08",
                   "--end", "2024-01-19", "--set", f"runs.root={str(root)!r}",
                   "--set", f"broker.commission_per_lot_usd={commission}",
                   "--set", f"data.file={str(bars)!r}",
                   "--set", "data.source_tz='Europe/Athens'"])
        assert rc == 0
    return root


def _metrics(folder):
    return json.loads((folder / "metrics.json").read_text())["metrics"]


def _run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_the_set_override_reaches_the_broker(runs):
    for name, per_side in (("cheap", 3.5), ("dear", 7.0)):
        with open(runs / name / "test" / "deals.csv", newline="") as fh:
            deals = list(csv.DictReader(fh))
        assert deals
        for d in deals:
            assert float(d["commission"]) == pytest.approx(-per_side * float(d["volume"]))


def test_single_run_regeneration_reproduces_the_files(runs, capsys, tmp_path):
    folder = runs / "cheap" / "test"
    before = {f: (folder / f).read_bytes() for f in ("metrics.json", "trades.csv", "deals.csv")}
    (folder / "report.html").unlink()
    rc, out, err = _run(capsys, "report", "cheap", "--set", f"runs.root={str(runs)!r}")
    assert rc == 0, err
    for f, data in before.items():
        assert (folder / f).read_bytes() == data, f
    # the clock the bars were in comes back from metrics.json into the header
    html = (folder / "report.html").read_text()
    text = re.sub(r"data:image/png;base64,[^\"]+", "", html)  # base64 may spell anything
    assert "2024-01-19 23:00 (broker time, Europe/Athens), " in html and "UTC" not in text
    lines = out.splitlines()
    assert lines[0].startswith("cheap: SMA-crossover demo") and lines[1].startswith("net profit")
    assert lines[-1] == f"report: {folder / 'report.html'}"
    # a folder path works too, and --out writes elsewhere with the same metrics
    rc, _, err = _run(capsys, "report", str(folder), "--out", str(tmp_path / "copy"))
    assert rc == 0, err
    assert (tmp_path / "copy" / "metrics.json").read_bytes() == before["metrics.json"]


def test_comparison_of_two_runs(runs, capsys):
    rc, out, err = _run(capsys, "report", "cheap", "dear", "--set", f"runs.root={str(runs)!r}")
    assert rc == 0, err
    out_dir = runs / "compare" / "cheap_vs_dear"
    assert out.splitlines()[-1] == f"report: {out_dir / 'comparison.html'}"
    a, b = _metrics(runs / "cheap" / "test"), _metrics(runs / "dear" / "test")
    # same trades, only the commission differs: 3.5 USD more per lot of every deal
    assert a["total_trades"] == b["total_trades"] > 0
    with open(runs / "cheap" / "test" / "deals.csv", newline="") as fh:
        lots = sum(float(d["volume"]) for d in csv.DictReader(fh))
    assert b["total_net_profit_usd"] - a["total_net_profit_usd"] == pytest.approx(-3.5 * lots)
    doc = json.loads((out_dir / "comparison.json").read_text())
    assert [r["label"] for r in doc["runs"]] == ["cheap", "dear"]
    diff = doc["differences"][0]["metrics"]
    for k in KEYS:
        want = b[k] - a[k]
        assert diff[k] == pytest.approx(want) if not math.isnan(want) else diff[k] is None
    html = (out_dir / "comparison.html").read_text()
    assert "data:image/png;base64," in html and "<h2>Training</h2>" not in html
    assert "2 runs, times in broker time, Europe/Athens." in html
    # terminal table: a row per key figure with both runs and the difference
    row = next(ln for ln in out.splitlines() if ln.startswith("net profit (USD)"))
    assert row.split()[-3:] == [f"{a['total_net_profit_usd']:+,.2f}",
                                f"{b['total_net_profit_usd']:+,.2f}",
                                f"{b['total_net_profit_usd'] - a['total_net_profit_usd']:+,.2f}"]


def _write_log(path, rows):
    cols = ["iteration", "samples", "train_forecast", "val_forecast", "lr", "wall_s"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        w.writerows(rows)


def test_training_logs_are_compared(runs, capsys, tmp_path):
    _write_log(runs / "cheap" / "study_encoder.csv",
               [[0, 0, "", 0.9, 1e-3, 0.1], [10, 640, 0.5, 0.6, 1e-3, 1.0],
                [20, 1280, 0.4, 0.7, 1e-3, 2.0]])
    _write_log(runs / "dear" / "study_encoder.csv",
               [[0, 0, "", 0.8, 1e-3, 0.1], [10, 640, 0.45, 0.5, 1e-3, 1.5]])
    opt = runs / "dear" / "compare_encoder"
    opt.mkdir()
    (opt / "comparison.csv").write_text("optimizer,final_val_forecast\nadam,0.5\nadam-mini,0.52\n")
    try:
        rc, out, err = _run(capsys, "report", "cheap", "dear", "--out", str(tmp_path),
                            "--set", f"runs.root={str(runs)!r}")
    finally:
        (runs / "cheap" / "study_encoder.csv").unlink()
    assert rc == 0, err
    html = (tmp_path / "comparison.html").read_text()
    assert html.count("<h2>Training</h2>") == 1 and html.rstrip().endswith("</html>")
    # the training section is the page's last section, its tables scroll in their own box
    training = html[html.index("<h2>Training</h2>"):]
    assert html.index("<h2>Metrics</h2>") < html.index("<h2>Training</h2>")
    assert training.rstrip().endswith("</table></div>\n</body></html>")
    assert training.count('<div class="wide"><table>') == 2
    # final and best validation loss of each run (best = min over the logged validations)
    assert ('<td class="l">cheap</td><td class="l">encoder</td><td>20</td><td class="l">'
            "forecast</td><td>0.7</td><td>0.6</td><td>2.0</td>") in html
    assert ('<td class="l">dear</td><td class="l">encoder</td><td>10</td><td class="l">'
            "forecast</td><td>0.5</td><td>0.5</td><td>1.5</td>") in html
    assert "dear: optimizer comparison (compare_encoder)" in html
    assert "<td>adam-mini</td><td>0.52</td>" in html
    assert (tmp_path / "training.png").stat().st_size > 1000
    assert f"training logs compared: {tmp_path / 'training.png'}" in out


def test_open_uses_the_web_browser(runs, capsys, monkeypatch):
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    rc, _, err = _run(capsys, "report", "cheap", "--open", "--set", f"runs.root={str(runs)!r}")
    assert rc == 0, err
    assert opened == [(runs / "cheap" / "test" / "report.html").resolve().as_uri()]


def test_unknown_run_is_a_one_line_error(runs, capsys):
    rc, out, err = _run(capsys, "report", "cheap", "nothing", "--set", f"runs.root={str(runs)!r}")
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("neurofx report: error: nothing: no report found")
    assert lines[0].endswith("run 'neurofx test --run nothing' first")


def test_a_broken_study_log_is_a_one_line_error(runs, capsys, tmp_path):
    log = runs / "dear" / "study_encoder.csv"
    _write_log(log, [[0, 0, "", 0.8, 1e-3, 0.1], [10, 640, "oops", 0.5, 1e-3, 1.5]])
    try:
        rc, out, err = _run(capsys, "report", "cheap", "dear", "--out", str(tmp_path),
                            "--set", f"runs.root={str(runs)!r}")
    finally:
        log.unlink()
    lines = err.strip().splitlines()
    assert rc == 2 and out == "" and len(lines) == 1
    assert lines[0] == (f"neurofx report: error: {log}:3: a value is not a number; rerun "
                        "'neurofx study' to rewrite the log")
