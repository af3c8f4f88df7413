"""`neurofx study encoder|actor|autoencoder`: train the agent's models from a trajectory store.

``encoder`` trains the forecaster (spec 5.2); ``actor`` trains the critic and the actor with
the run's encoder frozen (spec 5.3). ``--compare-optimizers adam,adam-mini`` trains the same
stage once per optimizer and writes a comparison. ``autoencoder`` runs seed 002's recall study
(:class:`neurofx.study.autoencoder.AutoencoderStage`) on the configured bars. Every stage is
trained by :class:`neurofx.study.trainer.Trainer`. See docs/study.md.
"""

from __future__ import annotations

import re
import tomllib

from neurofx.config import add_config_arguments, load_config
from neurofx.errors import NeurofxError

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
ROLES = {"encoder": ("encoder",), "actor": ("actor", "critic"), "autoencoder": ("autoencoder",)}
# stage defaults of the flags left out: iterations, batch, seq_len, lr
DEFAULTS = {"encoder": (200, 16, 100, 3e-4), "actor": (200, 16, 100, 3e-4),
            "autoencoder": (200, 8, 60, 1e-3)}
AUTOENCODER_RUN = "autoencoder"


def add_arguments(parser) -> None:
    parser.add_argument("stage", choices=("encoder", "actor", "autoencoder"),
                        help="encoder: the 24-bar forecaster; actor: critic + actor with the "
                        "run's encoder frozen; autoencoder: seed 002's recall study on the bars")
    parser.add_argument("--store", default=None, metavar="DIR",
                        help="trajectory store (encoder and actor)")
    parser.add_argument("--run", default=None, metavar="NAME",
                        help="run folder under runs.root (the actor stage reads its encoder.npz;"
                        f" required but for autoencoder, default {AUTOENCODER_RUN!r})")
    g = parser.add_argument_group("training")
    g.add_argument("--iterations", type=int, default=None, metavar="N",
                   help="batches of sub-sequences to train (default 200)")
    g.add_argument("--batch", type=int, default=None, metavar="B",
                   help="sub-sequences trained in parallel (default 16; autoencoder 8)")
    g.add_argument("--seq-len", type=int, default=None, metavar="L",
                   help="steps per chronological sub-sequence (default 100, as the seed; "
                   "autoencoder 60)")
    g.add_argument("--optimizer", default="adam", metavar="NAME",
                   help="optimizer of the trained models (neurofx.nn.optim.OPTIMIZERS)")
    g.add_argument("--lr", type=float, default=None,
                   help="learning rate (default 3e-4; autoencoder 1e-3)")
    g.add_argument("--opt-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="other optimizer hyper-parameter, e.g. weight_decay=0.1 (repeatable)")
    g.add_argument("--model", default="tpm", metavar="NAME",
                   help="registered model name for the stage's roles: tpm (the seed's models, "
                   "default) or baseline (small MLPs)")
    g.add_argument("--model-arg", action="append", default=[], metavar="ROLE.KEY=VALUE",
                   help="model size override, e.g. encoder.hidden=64 (repeatable); "
                   "autoencoder: autoencoder.{bars_in,bars_out,lstm,latent,decoder,"
                   "recall_ratio}")
    g.add_argument("--seed", type=int, default=0, help="sampling and split seed (default 0)")
    v = parser.add_argument_group("validation and checkpoints")
    v.add_argument("--val-share", type=float, default=0.2, metavar="F",
                   help="share of whole trajectories held out (default 0.2)")
    v.add_argument("--val-every", type=int, default=10, metavar="K",
                   help="validate every K iterations (default 10)")
    v.add_argument("--val-batches", type=int, default=2, metavar="N",
                   help="fixed validation batches of B sub-sequences (default 2)")
    v.add_argument("--checkpoint-every", type=int, default=50, metavar="K",
                   help="checkpoint every K iterations, 0 = only at the end and on Ctrl-C")
    v.add_argument("--early-stop", type=int, default=0, metavar="P",
                   help="stop after P validations without improvement (0 = off)")
    v.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    v.add_argument("--fresh", action="store_true",
                   help="discard this stage's checkpoint in the run and start over")
    parser.add_argument("--compare-optimizers", metavar="A,B,...", default=None,
                        help="train once per optimizer from the same start and compare")
    add_config_arguments(parser, "runs.root=elsewhere")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _value(raw: str):
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def parse_pairs(items: list[str], flag: str, roles: tuple[str, ...] | None = None) -> dict:
    """``KEY=VALUE`` (or ``ROLE.KEY=VALUE`` when ``roles``) items -> dict (TOML values)."""
    out: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if roles is None:
            if not sep or not key:
                raise NeurofxError(f"{flag} {item!r}: expected KEY=VALUE, e.g. weight_decay=0.1")
            out[key] = _value(raw.strip())
            continue
        role, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise NeurofxError(f"{flag} {item!r}: expected ROLE.KEY=VALUE, e.g. encoder.hidden=64")
        if role not in roles:
            raise NeurofxError(f"{flag} {item!r}: role {role!r} is not trained by this stage; "
                               f"valid: {', '.join(roles)}")
        out.setdefault(role, {})[name] = _value(raw.strip())
    return out


def _fill_defaults(args) -> None:
    """Stage defaults for the flags left out (their argparse default is None)."""
    for name, value in zip(("iterations", "batch", "seq_len", "lr"), DEFAULTS[args.stage],
                           strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)


def _check_run(run: str) -> None:
    if not _RUN_NAME.match(run):
        raise NeurofxError(f"--run {run!r}: use letters, digits, '.', '_' or '-'")


def settings_from_args(args):
    from neurofx.study.settings import Settings

    cfg = load_config(args.config, args.set)
    _fill_defaults(args)
    for flag, value in (("--store", args.store), ("--run", args.run)):
        if value is None:
            raise NeurofxError(f"study {args.stage}: {flag} is required")
    _check_run(args.run)
    opt_args = parse_pairs(args.opt_arg, "--opt-arg")
    if "betas" in opt_args and isinstance(opt_args["betas"], list):
        opt_args["betas"] = tuple(opt_args["betas"])
    settings = Settings(
        stage=args.stage, store=args.store, run=args.run, runs_root=cfg.runs.root,
        iterations=args.iterations, batch=args.batch, seq_len=args.seq_len,
        optimizer=args.optimizer, lr=args.lr, opt_args=opt_args,
        val_share=args.val_share, val_every=args.val_every, val_batches=args.val_batches,
        checkpoint_every=args.checkpoint_every, early_stop=args.early_stop, seed=args.seed,
        model=args.model, model_args=parse_pairs(args.model_arg, "--model-arg",
                                                 ROLES[args.stage]),
        resume=args.resume, fresh=args.fresh, progress=not args.no_progress)
    settings.check()
    return settings


def make_stage(settings, data):
    if settings.stage == "encoder":
        from neurofx.study.encoder import EncoderStage

        return EncoderStage(settings, data)
    from neurofx.study.actor import ActorStage

    return ActorStage(settings, data)


def run_autoencoder(settings, cfg) -> int:
    """`neurofx study autoencoder`: the recall study on the configured bars of
    [research.start, research.end), written into <runs.root>/<run>/."""
    import pandas as pd

    from neurofx.data import load_bars
    from neurofx.study.autoencoder import AutoencoderStage
    from neurofx.study.trainer import Trainer

    d, r = cfg.data, cfg.research
    bars = load_bars(d.file or None, fmt=d.format, source_tz=d.source_tz or None,
                     tz=d.tz or None)
    bars = bars[(bars.index >= pd.Timestamp(r.start)) & (bars.index < pd.Timestamp(r.end))]
    summary = Trainer(AutoencoderStage(settings, bars)).run()
    report = summary.report
    print(f"autoencoder: {len(bars)} bars {r.start} .. {r.end}, "
          f"{report['iterations']} iterations, final train loss "
          f"{report['final_train_loss']:.4g}")
    print(f"recalled lags (error < {report['recall_ratio']} x mean square): "
          f"{report['recalled_lags']} of {report['bars_out']}, "
          f"{report['recalled_beyond_input']} beyond the {report['bars_in']} input bars")
    print(f"wrote {settings.out_dir / 'autoencoder.npz'}, autoencoder_lags.csv, "
          f"autoencoder_study.json, log study_autoencoder.csv")
    if summary.stopped_early:
        print("stopped early: validation plateau")
    return 0


def run(args) -> int:
    if args.stage == "autoencoder":
        if args.compare_optimizers or args.store:
            raise NeurofxError("study autoencoder: --store and --compare-optimizers apply to "
                               "the encoder and actor stages only")
        args.store, args.run = "", args.run or AUTOENCODER_RUN
        return run_autoencoder(settings_from_args(args), load_config(args.config, args.set))
    from neurofx.study.compare import compare, markdown, parse_names
    from neurofx.study.data import load_dataset
    from neurofx.study.losses import loss_label
    from neurofx.study.trainer import Trainer

    settings = settings_from_args(args)
    names = parse_names(args.compare_optimizers) if args.compare_optimizers else None
    data = load_dataset(settings.store, settings.val_share, settings.seed)
    print(f"study {settings.stage}: {len(data.trajs)} trajectories ({len(data.train)} train, "
          f"{len(data.val)} validation), {data.nbytes / 2**20:.0f} MiB in memory")
    if names:
        rows, folder = compare(settings, data, names, make_stage)
        print(markdown(rows), end="")
        print(f"wrote {folder / 'comparison.csv'}, comparison.md, comparison.png")
        return 0
    stage = make_stage(settings, data)  # every input error is raised before anything is written
    for name, part in stage.parts.items():
        if part.optimizer is not None:
            how = "sequences (full BPTT)" if part.model.supports_sequences else "step by step"
            print(f"{name}: model {settings.model}, loss {loss_label(part.model)}, trained on "
                  f"{how}")
    summary = Trainer(stage).run()
    for name, part in stage.parts.items():
        if part.output:
            best = summary.best.get(name)
            how = f"best val_{part.monitor} {best:.6g}" if best is not None else "last weights"
            print(f"{name}: {settings.out_dir / part.output} ({how})")
    final = ", ".join(f"val_{k} {v:.6g}" for k, v in summary.final.items() if v is not None)
    print(f"{summary.iterations} iterations, {summary.samples} samples, "
          f"{summary.samples_per_s:.0f} samples/s, optimizer state "
          f"{summary.state_bytes / 1024:.1f} KiB" + (f"; {final}" if final else ""))
    print(f"log {settings.out_dir / f'study_{settings.stage}.csv'}, "
          f"plot {settings.out_dir / f'loss_{settings.stage}.png'}")
    if summary.stopped_early:
        print("stopped early: validation plateau")
    return 0

