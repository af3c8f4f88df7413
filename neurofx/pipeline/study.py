"""Study: train the agent's models from a trajectory store (seed StudyEncoder.mq5 and
Study.mq5), or run seed 002's recurrent-autoencoder recall study on the bars; docs/study.md.

Two phases, so that every input error comes before anything is written and the caller can say
what will be trained: :func:`prepare` loads the data and builds the stage(s) of a
:class:`StudyPlan`; :meth:`StudyPlan.run` trains them with the one
:class:`~neurofx.study.trainer.Trainer` and returns a :class:`StudyResult`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from neurofx import agents
from neurofx.cluster import import_ray
from neurofx.config import Config, check_run_name
from neurofx.errors import NeurofxError
from neurofx.locks import exclusive
from neurofx.study.actor import ActorStage
from neurofx.study.autoencoder import AutoencoderStage
from neurofx.study.compare import (
    compare,
    comparison_stages,
    markdown,
    parse_names,
    write_comparison,
)
from neurofx.study.data import Dataset, load_dataset
from neurofx.study.encoder import EncoderStage
from neurofx.study.losses import loss_label
from neurofx.study.ray_compare import train_on_ray
from neurofx.study.settings import Settings
from neurofx.study.stage import Stage
from neurofx.study.trainer import Summary, Trainer

STAGES = ("encoder", "actor", "autoencoder")
ROLES = {"encoder": ("encoder",), "actor": ("actor", "critic")}  # the models each stage trains
AUTOENCODER_RUN = "autoencoder"


def settings_of(cfg: Config, stage: str, run: str, store: str = "", *, resume: bool = False,
                fresh: bool = False, progress: bool = True) -> Settings:
    """The study :class:`Settings` of ``stage`` from ``[study]`` (and ``[autoencoder]``)."""
    if stage not in STAGES:
        raise NeurofxError(f"unknown study stage {stage!r}; valid: {', '.join(STAGES)}")
    check_run_name(run)
    if resume and fresh:
        raise NeurofxError("--resume and --fresh exclude each other; pick one")
    s = cfg.study
    opt_args = dict(s.opt_args)
    if isinstance(opt_args.get("betas"), list):
        opt_args["betas"] = tuple(opt_args["betas"])
    if stage == "autoencoder":
        a = cfg.autoencoder
        sizes, model_args = (a.iterations, a.batch, a.seq_len, a.lr), {"autoencoder": {
            k: v for k, v in dataclasses.asdict(a).items()
            if k not in ("iterations", "batch", "seq_len", "lr")}}
    else:
        sizes = (s.iterations, s.batch, s.seq_len, s.lr)
        model_args = {role: dict(v) for role, v in s.model_args.items() if role in ROLES[stage]}
    iterations, batch, seq_len, lr = sizes
    return Settings(stage=stage, store=store, run=run, runs_root=cfg.runs.root,
                    iterations=iterations, batch=batch, seq_len=seq_len,
                    optimizer=s.optimizer, lr=lr, opt_args=opt_args, val_share=s.val_share,
                    val_every=s.val_every, val_batches=s.val_batches,
                    checkpoint_every=s.checkpoint_every, early_stop=s.early_stop, seed=s.seed,
                    model=s.model, model_args=model_args, resume=resume, fresh=fresh,
                    progress=progress)


def make_stage(settings: Settings, data: Dataset) -> Stage:
    """The encoder or actor stage of ``settings`` on the loaded ``data``."""
    return (EncoderStage if settings.stage == "encoder" else ActorStage)(settings, data)


@dataclass(frozen=True)
class StudyResult:
    """What a study run did: the summary of each trained stage (one per optimizer when
    comparing) and, when comparing, the comparison table and its folder."""

    settings: Settings
    summaries: list[Summary]
    stages: list[Stage]
    comparison: list[dict] | None = None
    comparison_folder: Path | None = None

    def lines(self) -> list[str]:
        if self.comparison is not None:
            return [markdown(self.comparison).rstrip("\n"),
                    f"wrote {self.comparison_folder / 'comparison.csv'}, comparison.md, "
                    "comparison.png"]
        s, summary, stage = self.settings, self.summaries[0], self.stages[0]
        if s.stage == "autoencoder":
            return _autoencoder_lines(s, summary)
        out = []
        for name, part in stage.parts.items():
            if part.output:
                best = summary.best.get(name)
                how = f"best val_{part.monitor} {best:.6g}" if best is not None else "last weights"
                out.append(f"{name}: {s.out_dir / part.output} ({how})")
        final = ", ".join(f"val_{k} {v:.6g}" for k, v in summary.final.items() if v is not None)
        out.append(f"{summary.iterations} iterations, {summary.samples} samples, "
                   f"{summary.samples_per_s:.0f} samples/s, optimizer state "
                   f"{summary.state_bytes / 1024:.1f} KiB" + (f"; {final}" if final else ""))
        out.append(f"log {s.out_dir / f'study_{s.stage}.csv'}, "
                   f"plot {s.out_dir / f'loss_{s.stage}.png'}")
        if summary.stopped_early:
            out.append("stopped early: validation plateau")
        return out


def _autoencoder_lines(s: Settings, summary: Summary) -> list[str]:
    report = summary.report
    out = [f"autoencoder: {report['iterations']} iterations, final train loss "
           f"{report['final_train_loss']:.4g}",
           f"recalled lags (error < {report['recall_ratio']} x mean square): "
           f"{report['recalled_lags']} of {report['bars_out']}, "
           f"{report['recalled_beyond_input']} beyond the {report['bars_in']} input bars",
           f"wrote {s.out_dir / 'autoencoder.npz'}, autoencoder_lags.csv, "
           "autoencoder_study.json, log study_autoencoder.csv"]
    if summary.stopped_early:
        out.append("stopped early: validation plateau")
    return out


@dataclass(frozen=True)
class StudyPlan:
    """A prepared study: its settings, data and stages, checked and built, nothing written."""

    settings: Settings
    stages: list[Stage]
    data_lines: list[str]
    compare: list[str] | None = None
    data: Dataset | None = None
    executor: str = "local"  # --compare-optimizers on Ray: one optimizer per task
    address: str = ""

    def lines(self) -> list[str]:
        """What will be trained, from what."""
        out = list(self.data_lines)
        if self.compare is None and self.settings.stage != "autoencoder":
            for name, part in self.stages[0].parts.items():
                if part.optimizer is not None:
                    model = agents.resolve(name if name in agents.DEFAULT_MODELS else "encoder",
                                           self.settings.model)
                    if not part.model.num_parameters:
                        out.append(f"{name}: model {model}, fitted in closed form (no "
                                   "trainable parameter: one iteration reports its loss)")
                        continue
                    how = ("sequences (full BPTT)" if part.model.supports_sequences
                           else "step by step")
                    out.append(f"{name}: model {model}, loss "
                               f"{loss_label(part.model)}, trained on {how}")
        return out

    def run(self, on_iteration=None) -> StudyResult:
        """Train (one writer per run folder); Ctrl-C checkpoints and raises
        :class:`~neurofx.study.trainer.TrainingInterrupted`."""
        with exclusive(self.settings.run_dir, "run folder"):
            if self.compare is not None and self.executor == "ray":
                for stage in self.stages:  # checkpoints refused or cleared here, the writer
                    Trainer(stage).prepare()
                summaries = train_on_ray(self.stages, self.data, self.address,
                                         cpus=len(self.stages))
                folder = self.settings.run_dir / f"compare_{self.settings.stage}"
                rows = write_comparison(folder, self.compare, summaries, self.stages[0])
                return StudyResult(self.settings, summaries, self.stages, rows, folder)
            if self.compare is not None:
                rows, folder = compare(self.settings, self.data, self.compare, make_stage,
                                       on_iteration, self.stages)
                return StudyResult(self.settings, [], [], rows, folder)
            trainer = Trainer(self.stages[0], on_iteration)
            trainer.prepare()
            return StudyResult(self.settings, [trainer.run()], self.stages)


def prepare(cfg: Config, stage: str, run: str | None, store: str | None = None, *,
            resume: bool = False, fresh: bool = False, progress: bool = True,
            compare_optimizers: str | None = None) -> StudyPlan:
    """Check the inputs, load the store (or the bars, for the autoencoder) and build the
    stage; nothing is written yet."""
    if stage == "autoencoder":
        if store or compare_optimizers:
            raise NeurofxError("study autoencoder: --store and --compare-optimizers apply to "
                               "the encoder and actor stages only")
        settings = settings_of(cfg, stage, run or AUTOENCODER_RUN, resume=resume, fresh=fresh,
                               progress=progress)
        settings.check()
        bars = cfg.data.load_bars()
        r = cfg.research
        bars = bars[(bars.index >= r.start) & (bars.index < r.end)]
        return StudyPlan(settings, [AutoencoderStage(settings, bars)],
                         [f"autoencoder: {len(bars)} bars {r.start} .. {r.end}"])
    for flag, value in (("--store", store), ("--run", run)):
        if not value:
            raise NeurofxError(f"study {stage}: {flag} is required")
    settings = settings_of(cfg, stage, run, str(store), resume=resume, fresh=fresh,
                           progress=progress)
    settings.check()
    names = parse_names(compare_optimizers) if compare_optimizers else None
    data = load_dataset(settings.store, settings.val_share, settings.seed)
    lines = [f"study {stage}: {len(data.trajs)} trajectories ({len(data.train)} train, "
             f"{len(data.val)} validation), {data.nbytes / 2**20:.0f} MiB in memory"]
    if names:
        if cfg.study.executor == "ray":
            import_ray()  # not installed: one line saying how, before any work
        stages = comparison_stages(settings, data, names, make_stage)
        if not stages[0].trainable:
            raise NeurofxError(f"study {stage} --compare-optimizers: the "
                               f"{agents.resolve('encoder', settings.model)} encoder has no "
                               "trainable parameter (it is fitted in closed form); compare "
                               "optimizers on a trained model, e.g. --model tpm")
        return StudyPlan(settings, stages, lines, names, data, cfg.study.executor,
                         cfg.study.address)
    return StudyPlan(settings, [make_stage(settings, data)], lines, None, data)
