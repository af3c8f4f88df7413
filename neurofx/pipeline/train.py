"""Train: the seed's research <-> study loop in one command (spec 5.3 step 6; docs/train.md).

initial research (``[research]``: random policy, Real-ORL deal files, or untrained neural
models) -> study encoder -> ``train.rounds`` rounds of (study actor -> research with the
trained actor, its VAE head exploring, into the same store under its buffer rules) -> test.
Every step is the ordinary pipeline step (:func:`research.run_research`,
:func:`study.prepare`, :func:`test.run_test`), run with the settings its command would get;
the run's store is ``<runs.root>/<run>/trajectories``.

Resume: ``train_state.json`` (written atomically) records the step in progress, every
finished step and each research pass's profit, deals and decision as it is made. A resumed run
skips the finished steps; an interrupted study step continues from its checkpoint; an
interrupted research step skips the passes its store has decided (same keys). After each round
``rounds.csv`` is rewritten from the state (:mod:`neurofx.reports.rounds`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from shlex import join

from neurofx.atomic import json_safe, write_json_atomic
from neurofx.config import DEFAULTS, Config, check_run_name, snapshot
from neurofx.errors import NeurofxError
from neurofx.locks import exclusive
from neurofx.pipeline import research, study, test
from neurofx.reports.rounds import LOSSES, ROUNDS_CSV, round_row, write_rounds
from neurofx.study.actor import ACTOR_FILE
from neurofx.study.encoder import ENCODER_FILE
from neurofx.study.files import checkpoint_json, remove_checkpoint

STATE_JSON = "train_state.json"
STATE_FORMAT, STATE_VERSION = "neurofx-train-state", 1
STORE = "trajectories"
LOCK_FOLDER = ".train"  # the train run's own lock: its steps lock the run folder themselves
# settings a resumed run may change; any other must be what the run was started with
FREE = {"train": {"rounds"}, "research": {"jobs", "executor", "address"},
        "study": {"checkpoint_every", "executor", "address"}, "runs": {"root"}, "test": None}
STUDY_FLAGS = {"iterations": "--iterations", "batch": "--batch", "seq_len": "--seq-len",
               "optimizer": "--optimizer", "lr": "--lr", "model": "--model", "seed": "--seed",
               "val_share": "--val-share", "val_every": "--val-every",
               "val_batches": "--val-batches", "checkpoint_every": "--checkpoint-every",
               "early_stop": "--early-stop"}


@dataclass(frozen=True)
class Step:
    """One step of the loop: ``research-0``, ``encoder``, ``actor-K``, ``research-K``, ``test``."""

    name: str
    kind: str  # research, study or test
    round: int = 0


def steps(rounds: int) -> list[Step]:
    """The steps of a run of ``rounds`` rounds, in order."""
    out = [Step("research-0", "research"), Step("encoder", "study")]
    for k in range(1, rounds + 1):
        out += [Step(f"actor-{k}", "study", k), Step(f"research-{k}", "research", k)]
    return [*out, Step("test", "test")]


@dataclass
class TrainState:
    """What ``train_state.json`` holds: the settings, the step in progress, the finished steps
    (name -> record), the research passes decided so far (step -> pass index -> record) and
    the wall seconds of the research steps so far."""

    path: Path
    config: dict
    current: str | None = None
    done: dict = field(default_factory=dict)
    passes: dict = field(default_factory=dict)
    wall_s: dict = field(default_factory=dict)

    def save(self) -> None:
        write_json_atomic(self.path, json_safe({
            "format": STATE_FORMAT, "version": STATE_VERSION, "config": self.config,
            "current": self.current, "done": self.done, "passes": self.passes,
            "wall_s": self.wall_s}))

    def start(self, step: str) -> None:
        self.current = step
        self.save()

    def finish(self, step: str, record: dict) -> None:
        self.done[step] = record
        self.current = None
        self.save()

    @classmethod
    def load(cls, path: Path) -> TrainState:
        """The state of ``path``, or one line saying it is not a readable one."""
        tables = ("config", "done", "passes", "wall_s")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            ok = (doc.get("format"), doc.get("version")) == (STATE_FORMAT, STATE_VERSION) \
                and all(isinstance(doc.get(k), dict) for k in tables)
        except (ValueError, AttributeError):
            ok = False
        if not ok:
            raise NeurofxError(f"{path}: not a train state of this neurofx ({STATE_FORMAT} "
                               f"version {STATE_VERSION} with {', '.join(tables)}); start over "
                               "with --fresh")
        return cls(path, doc["config"], doc.get("current"), doc["done"], doc["passes"],
                   doc["wall_s"])


def changed_setting(recorded: dict, now: dict) -> str | None:
    """The first ``section.key`` whose value differs from the recorded run's, ignoring
    :data:`FREE`; None when they agree."""
    for section, values in now.items():
        free = FREE.get(section, set())
        if free is None:
            continue
        for key, value in values.items():
            have = recorded.get(section, {}).get(key)
            if key not in free and json_safe(have) != json_safe(value):
                return f"{section}.{key} = {have!r}, not {value!r}"
    return None


@dataclass(frozen=True)
class TrainResult:
    """What a finished run did: its folder, rounds and the test's report."""

    folder: Path
    rows: list[dict]
    report: str

    def lines(self) -> list[str]:
        kept = sum(int(r["kept"]) for r in self.rows)
        passes = sum(int(r["passes"]) for r in self.rows)
        n = len(self.rows)
        return [f"\ntrain done: {n} round{'s' * (n != 1)}, {kept} of their {passes} research "
                f"passes kept; rounds {self.folder / ROUNDS_CSV}, "
                f"report {self.report}"]


class PassEvents:
    """What a research step reports its passes to (the command's progress bar)."""

    def start(self, passes: int) -> None: ...

    def update(self, spec, traj, added, summary) -> None: ...

    def close(self) -> None: ...


@dataclass
class TrainPlan:
    """A checked train run: its configuration, run name (``name``) and how to start; nothing
    written. ``common``: the ``--config``/``--set`` arguments every printed step repeats."""

    cfg: Config
    name: str
    resume: bool = False
    fresh: bool = False
    progress: bool = True
    common: list[str] = field(default_factory=list)
    state: TrainState | None = None

    @property
    def folder(self) -> Path:
        return Path(self.cfg.runs.root) / self.name

    @property
    def store(self) -> Path:
        return self.folder / STORE

    @property
    def rounds(self) -> int:
        return self.cfg.train.rounds

    # ---- the settings of each step ------------------------------------------------------------
    def step_config(self, step: Step) -> Config:
        """The configuration ``step`` runs with: a round's research is neural (the run's
        encoder and actor, ``research.explore``), seeded ``research.seed + round``, with
        ``train.passes`` passes and ``train.min_profit``."""
        cfg, r, t = self.cfg, self.cfg.research, self.cfg.train
        if step.kind != "research":
            return cfg
        r = dataclasses.replace(r, store=str(self.store))
        if step.round:
            r = dataclasses.replace(
                r, policy="neural", deals=[], encoder=str(self.folder / ENCODER_FILE),
                actor=str(self.folder / ACTOR_FILE), passes=t.passes or r.passes,
                seed=r.seed + step.round, min_profit=t.min_profit)
        return dataclasses.replace(cfg, research=r)

    def command_line(self, step: Step, resume: bool = False) -> str:
        """The ``neurofx ...`` command that does what ``step`` does."""
        cfg = self.step_config(step)
        if step.kind == "test":
            seed = ["--seed", str(cfg.test.seed)] if cfg.test.seed else []
            return join(["neurofx", "test", "--run", self.name, *seed, *self.common])
        if step.kind == "research":
            r = cfg.research
            argv = ["research", "--policy", r.policy, "--passes", str(r.passes), "--seed",
                    str(r.seed), "--start", r.start, "--end", r.end, "--store", str(self.store)]
            argv.append(f"--min-profit={research.resolve(cfg).research.min_profit:g}")
            if r.policy == "neural":
                argv += ["--encoder", r.encoder, "--actor", r.actor]
                argv += [] if r.explore else ["--no-explore"]
            argv += ["--deals", *r.deals] if r.deals else []
            return join(["neurofx", *argv, *self.common])
        stage = "encoder" if step.name == "encoder" else "actor"
        s, default = cfg.study, DEFAULTS["study"]
        argv = ["study", stage, "--store", str(self.store), "--run", self.name,
                "--resume" if resume else "--fresh", "--iterations", str(s.iterations)]
        for key, flag in STUDY_FLAGS.items():
            if key != "iterations" and getattr(s, key) != default[key]:
                argv += [flag, str(getattr(s, key))]
        for role in study.ROLES[stage]:
            argv += [a for k, v in s.model_args.get(role, {}).items()
                     for a in ("--model-arg", f"{role}.{k}={v}")]
        argv += [a for k, v in s.opt_args.items() for a in ("--opt-arg", f"{k}={v}")]
        return join(["neurofx", *argv, *self.common])

    # ---- the run ------------------------------------------------------------------------------
    def run(self, say: Callable[[str], None] = lambda line: None,
            bar: PassEvents | None = None) -> TrainResult:
        """Run the steps not yet done (one train run per folder at a time). Ctrl-C stops the
        step in progress as its command would (a study checkpoints) and propagates;
        ``self.state.current`` names the step."""
        bar = bar or PassEvents()
        with exclusive(self.folder / LOCK_FOLDER, "train run"):
            self.state = self._open_state(say)
            snapshot(self.cfg, self.folder, "neurofx train")
            self._write_rounds()
            for step in steps(self.rounds):
                if step.name in self.state.done:
                    say(f"{step.name}: done earlier, skipped")
                    continue
                if step.kind == "research":
                    self._research(step, say, bar)
                elif step.kind == "study":
                    self._study(step, say)
                else:
                    self._test(step, say)
            return TrainResult(self.folder, self._rows(), self.state.done["test"]["report"])

    def _open_state(self, say: Callable[[str], None]) -> TrainState:
        path = self.folder / STATE_JSON
        now = json_safe(self.cfg.to_dict())
        if self.fresh:
            self._clear()
        elif self.resume:
            if not path.is_file():
                raise NeurofxError(f"{path}: no train run to resume; run without --resume")
            state = TrainState.load(path)
            diff = changed_setting(state.config, now)
            if diff:
                raise NeurofxError(f"{path}: the run was started with {diff}; resume with the "
                                   "same settings, or start over with --fresh")
            done = max((int(n.split("-")[1]) for n in state.done if n.startswith("research-")),
                       default=0)
            if done > self.rounds:
                raise NeurofxError(f"--rounds {self.rounds}: the run has done {done} rounds "
                                   f"already; give --rounds {done} or more")
            if state.done.get("test", {}).get("rounds") != self.rounds:
                state.done.pop("test", None)  # more rounds: the test runs again after them
            state.config = now
            say(f"resuming run {self.name!r}: {len(state.done)} steps done"
                + (f", {state.current} in progress" if state.current else ""))
            return state
        elif self._exists():
            where = path if path.is_file() else self.folder
            raise NeurofxError(f"{where}: run {self.name!r} already exists; add --resume to "
                               "continue it, --fresh to start over, or choose another --run")
        if self.cfg.research.store:
            say(f"note: research.store is not used; neurofx train keeps its passes in "
                f"{self.store}")
        state = TrainState(path, now)
        state.save()
        return state

    def _exists(self) -> bool:
        return ((self.folder / STATE_JSON).is_file() or self.store.exists()
                or any(checkpoint_json(self.folder, s).is_file() for s in ("encoder", "actor")))

    def _clear(self) -> None:
        """--fresh: the run's state, rounds, store and study checkpoints go."""
        (self.folder / STATE_JSON).unlink(missing_ok=True)
        (self.folder / ROUNDS_CSV).unlink(missing_ok=True)
        for stage in ("encoder", "actor"):
            remove_checkpoint(self.folder, stage)
        if self.store.exists():
            with exclusive(self.store, "trajectory store"):
                shutil.rmtree(self.store)

    def _rows(self) -> list[dict]:
        rows = []
        for k in range(1, self.rounds + 1):
            rec = self.state.done.get(f"research-{k}")
            if rec is not None:
                rows.append({c: float("nan") if v is None else v for c, v in rec["row"].items()})
        return rows

    def _write_rounds(self) -> None:
        rows = self._rows()
        if rows:
            write_rounds(self.folder / ROUNDS_CSV, rows)

    # ---- the steps ----------------------------------------------------------------------------
    def _research(self, step: Step, say: Callable[[str], None], bar: PassEvents) -> None:
        state, cfg = self.state, self.step_config(step)
        say(f"\n$ {self.command_line(step)}")
        if research.deal_files(cfg)[1]:
            say(f"note: no --deals given; using the bundled {research.EXAMPLE_DEALS} (made by a "
                "moving-average crossover rule, NOT a real signal)")
        resumed = state.current == step.name
        state.start(step.name)
        records = state.passes.setdefault(step.name, {})
        t0, before = time.perf_counter(), state.wall_s.get(step.name, 0.0) if resumed else 0.0

        def on_result(spec, traj, added, summary):
            records[str(spec.index)] = {"profit": traj.profit, "deals": traj.extra.get("deals", 0),
                                        "trades": traj.extra.get("trades", 0),
                                        "kept": bool(added.kept)}
            state.wall_s[step.name] = before + time.perf_counter() - t0
            state.save()
            bar.update(spec, traj, added, summary)

        try:
            result = research.run_research(cfg, self.command_line(step), on_start=bar.start,
                                           on_result=on_result)
        finally:
            bar.close()
        say(result.to_text())
        total = result.summary.passes + result.summary.skipped
        if len(records) < total:
            say(f"note: {total - len(records)} passes were decided by the store but not "
                f"recorded in {STATE_JSON} (killed in between); the counts below leave them out")
        profits = [r["profit"] for r in records.values()]
        trades = [r.get("trades", 0) for r in records.values()]
        kept = sum(r["kept"] for r in records.values())
        rec = {"passes": len(profits), "kept": kept,
               "min_profit": research.resolve(cfg).research.min_profit,
               "wall_s": before + time.perf_counter() - t0}
        if step.round:
            actor = state.done[f"actor-{step.round}"]
            losses = {**actor["val"], "val_encoder": state.done["encoder"]["val"]["val_encoder"]}
            row = round_row(step.round, profits, trades, kept, rec["min_profit"], len(result.store),
                            losses, actor["wall_s"] + rec["wall_s"])
            rec["row"] = row
            state.finish(step.name, rec)
            self._write_rounds()
            say(self._round_line(row))
        elif not len(result.store):
            raise NeurofxError(
                f"{self.store}: the initial research kept none of its {len(profits)} passes "
                f"(research.min_profit {rec['min_profit']:g} USD), so there is nothing to study; "
                "start over with --fresh and more --passes, or keep every pass with "
                "--set research.min_profit=-1e9 (as quickstart does)")
        else:
            state.finish(step.name, rec)

    def _round_line(self, row: dict) -> str:
        def money(x):
            return "n/a" if x != x else f"{x:+,.2f}"

        val = ", ".join(f"{k} {row[k]:.4g}" for k in LOSSES[1:3] if row[k] == row[k])
        return (f"round {row['round']}/{self.rounds}: kept {row['kept']} of {row['passes']} "
                f"passes (discarded {row['discarded']}, min_profit {row['min_profit_usd']:g} "
                f"USD); profit median {money(row['profit_median_usd'])} USD (min "
                f"{money(row['profit_min_usd'])}, max {money(row['profit_max_usd'])}); "
                f"{val or 'no validation'}; {row['wall_s']:.0f} s")

    def _study(self, step: Step, say: Callable[[str], None]) -> None:
        state = self.state
        stage = "encoder" if step.name == "encoder" else "actor"
        resume = state.current == step.name and checkpoint_json(self.folder, stage).is_file()
        if not resume:  # a checkpoint of an earlier round's actor is not this step's
            remove_checkpoint(self.folder, stage)
        say(f"\n$ {self.command_line(step, resume)}")
        plan = study.prepare(self.cfg, stage, self.name, str(self.store), resume=resume,
                             fresh=not resume, progress=self.progress)
        for line in plan.lines():
            say(line)
        state.start(step.name)
        result = plan.run()
        for line in result.lines():
            say(line)
        summary = result.summaries[0]
        names = {"loss": "val_encoder"} if stage == "encoder" else {
            k: f"val_{k}" for k in ("critic", "actor", "q")}
        state.finish(step.name, {"val": {names[k]: v for k, v in summary.final.items()},
                                 "wall_s": summary.wall_s, "iterations": summary.iterations})

    def _test(self, step: Step, say: Callable[[str], None]) -> None:
        say(f"\n$ {self.command_line(step)}")
        self.state.start(step.name)
        result = test.run_test(self.cfg, self.name)
        for line in result.lines():
            say(line)
        self.state.finish(step.name, {"rounds": self.rounds,
                                      "report": str(result.report.report_path)})


def prepare(cfg: Config, run: str, *, resume: bool = False, fresh: bool = False,
            progress: bool = True, common: list[str] | None = None) -> TrainPlan:
    """Check the run's settings that fit together; nothing is written."""
    check_run_name(run)
    if resume and fresh:
        raise NeurofxError("--resume and --fresh exclude each other; pick one")
    research.resolve(cfg)  # e.g. --deals without --policy real-orl: one line now
    return TrainPlan(cfg, run, resume, fresh, progress, list(common or []))
