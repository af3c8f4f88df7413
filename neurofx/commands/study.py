"""`neurofx study encoder|actor`: train the agent's models from a trajectory store.

``encoder`` trains the forecaster (spec 5.2); ``actor`` trains the critic and the actor with
the run's encoder frozen (spec 5.3). ``--compare-optimizers adam,adam-mini`` trains the same
stage once per optimizer and writes a comparison. See docs/study.md.
"""

from __future__ import annotations

import re
import tomllib

from neurofx.config import load_config
from neurofx.errors import NeurofxError

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
ROLES = {"encoder": ("encoder",), "actor": ("actor", "critic")}


def add_arguments(parser) -> None:
    parser.add_argument("stage", choices=("encoder", "actor"),
                        help="encoder: the 24-bar forecaster; actor: critic + actor with the "
                        "run's encoder frozen")
    parser.add_argument("--store", required=True, metavar="DIR", help="trajectory store")
    parser.add_argument("--run", required=True, metavar="NAME",
                        help="run folder under runs.root (the actor stage reads its encoder.npz)")
    g = parser.add_argument_group("training")
    g.add_argument("--iterations", type=int, default=200, metavar="N",
                   help="batches of sub-sequences to train (default 200)")
    g.add_argument("--batch", type=int, default=16, metavar="B",
                   help="sub-sequences trained in parallel (default 16)")
    g.add_argument("--seq-len", type=int, default=100, metavar="L",
                   help="steps per chronological sub-sequence (default 100, as the seed)")
    g.add_argument("--optimizer", default="adam", metavar="NAME",
                   help="optimizer of the trained models (neurofx.nn.optim.OPTIMIZERS)")
    g.add_argument("--lr", type=float, default=3e-4, help="learning rate (default 3e-4)")
    g.add_argument("--opt-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="other optimizer hyper-parameter, e.g. weight_decay=0.1 (repeatable)")
    g.add_argument("--model", default="baseline", metavar="NAME",
                   help="registered model name for the stage's roles (default baseline)")
    g.add_argument("--model-arg", action="append", default=[], metavar="ROLE.KEY=VALUE",
                   help="model size override, e.g. encoder.hidden=64 (repeatable)")
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
    parser.add_argument("--config", metavar="FILE", default=None, help="TOML configuration")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="configuration override")
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


def settings_from_args(args):
    from neurofx.study.loop import Settings

    cfg = load_config(args.config, args.overrides)
    if not _RUN_NAME.match(args.run):
        raise NeurofxError(f"--run {args.run!r}: use letters, digits, '.', '_' or '-'")
    opt_args = parse_pairs(args.opt_arg, "--opt-arg")
    if "betas" in opt_args and isinstance(opt_args["betas"], list):
        opt_args["betas"] = tuple(opt_args["betas"])
    settings = Settings(
        stage=args.stage, store=args.store, run=args.run, runs_root=cfg["runs"]["root"],
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


def _prepare_folder(settings) -> None:
    """Refuse to overwrite a checkpointed run silently; ``--fresh`` clears the stage's one."""
    from neurofx.study import files

    ckpt = files.checkpoint_json(settings.out_dir, settings.stage)
    if ckpt.exists() and not settings.resume:
        if not settings.fresh:
            raise NeurofxError(f"{ckpt}: run {settings.run!r} already has a {settings.stage} "
                               f"checkpoint; add --resume to continue it, --fresh to start over, "
                               f"or choose another --run")
        ckpt.unlink()
        for p in ckpt.parent.glob(f"{settings.stage}-*.npz"):
            p.unlink()


def run(args) -> int:
    from neurofx.study.compare import compare, markdown, parse_names
    from neurofx.study.data import load_dataset
    from neurofx.study.loop import run_stage

    settings = settings_from_args(args)
    names = parse_names(args.compare_optimizers) if args.compare_optimizers else None
    data = load_dataset(settings.store, settings.val_share, settings.seed)
    print(f"study {settings.stage}: {len(data.trajs)} trajectories ({len(data.train)} train, "
          f"{len(data.val)} validation), {data.nbytes / 2**20:.0f} MiB in memory")
    if names:
        rows, folder = compare(settings, data, names, make_stage, prepare=_prepare_folder)
        print(markdown(rows), end="")
        print(f"wrote {folder / 'comparison.csv'}, comparison.md, comparison.png")
        return 0
    stage = make_stage(settings, data)  # every input error is raised before anything is written
    _prepare_folder(settings)
    summary = run_stage(stage)
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

