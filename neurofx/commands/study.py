"""`neurofx study encoder|actor|autoencoder`: train the agent's models from a trajectory store.

``encoder`` trains the forecaster (spec 5.2); ``actor`` trains the critic and the actor with
the run's encoder frozen (spec 5.3). ``--compare-optimizers adam,adam-mini`` trains the same
stage once per optimizer and writes a comparison. ``autoencoder`` runs seed 002's recall study
(:class:`neurofx.study.autoencoder.AutoencoderStage`) on the configured bars. Every stage is
trained by :class:`neurofx.study.trainer.Trainer`. See docs/study.md.
"""

from __future__ import annotations

import dataclasses

from neurofx.config import Config, ConfigError, add_config_arguments, load_config, parse_pairs
from neurofx.pipeline import study

TRAINING = ("iterations", "batch", "seq_len", "lr")  # [autoencoder]'s own for that stage
STUDY_FLAGS = {"optimizer": "--optimizer", "model": "--model", "seed": "--seed",
               "val_share": "--val-share", "val_every": "--val-every",
               "val_batches": "--val-batches", "checkpoint_every": "--checkpoint-every",
               "early_stop": "--early-stop", "executor": "--executor", "address": "--address"}


def add_arguments(parser) -> None:
    parser.add_argument("stage", choices=study.STAGES,
                        help="encoder: the 24-bar forecaster; actor: critic + actor with the "
                        "run's encoder frozen; autoencoder: seed 002's recall study on the bars")
    parser.add_argument("--store", default=None, metavar="DIR",
                        help="trajectory store (encoder and actor)")
    parser.add_argument("--run", default=None, metavar="NAME",
                        help="run folder under runs.root (the actor stage reads its encoder.npz;"
                        f" required but for autoencoder, default {study.AUTOENCODER_RUN!r})")
    # flags default to None: a flag not given leaves the [study] ([autoencoder]) value
    g = parser.add_argument_group("training ([study]; the autoencoder's sizes: [autoencoder])")
    g.add_argument("--iterations", type=int, default=None, metavar="N",
                   help="batches of sub-sequences to train (default 200)")
    g.add_argument("--batch", type=int, default=None, metavar="B",
                   help="sub-sequences trained in parallel (default 16; autoencoder 8)")
    g.add_argument("--seq-len", type=int, default=None, metavar="L",
                   help="steps per chronological sub-sequence (default 100, as the seed; "
                   "autoencoder 60)")
    g.add_argument("--optimizer", default=None, metavar="NAME",
                   help="optimizer of the trained models (neurofx.nn.optim.OPTIMIZERS; "
                   "default adam)")
    g.add_argument("--lr", type=float, default=None,
                   help="learning rate (default 3e-4; autoencoder 1e-3)")
    g.add_argument("--opt-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="other optimizer hyper-parameter, e.g. weight_decay=0.1 (repeatable)")
    g.add_argument("--model", default=None, metavar="NAME",
                   help="registered model name for the stage's roles: auto (default: the "
                   "fitted skip encoder, the seed's tpm actor and critic), tpm (the seed's "
                   "models), baseline (small MLPs) or skip (encoder only)")
    g.add_argument("--model-arg", action="append", default=[], metavar="ROLE.KEY=VALUE",
                   help="model size override, e.g. encoder.hidden=64 (repeatable); "
                   "autoencoder: autoencoder.{bars_in,bars_out,lstm,latent,decoder,"
                   "recall_ratio}")
    g.add_argument("--seed", type=int, default=None, help="sampling and split seed (default 0)")
    v = parser.add_argument_group("validation and checkpoints")
    v.add_argument("--val-share", type=float, default=None, metavar="F",
                   help="share of whole trajectories held out (default 0.2)")
    v.add_argument("--val-every", type=int, default=None, metavar="K",
                   help="validate every K iterations (default 10)")
    v.add_argument("--val-batches", type=int, default=None, metavar="N",
                   help="fixed validation batches of B sub-sequences (default 2)")
    v.add_argument("--checkpoint-every", type=int, default=None, metavar="K",
                   help="checkpoint every K iterations, 0 = only at the end and on Ctrl-C "
                   "(default 50)")
    v.add_argument("--early-stop", type=int, default=None, metavar="P",
                   help="stop after P validations without improvement (0 = off, default)")
    v.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    v.add_argument("--fresh", action="store_true",
                   help="discard this stage's checkpoint in the run and start over")
    parser.add_argument("--compare-optimizers", metavar="A,B,...", default=None,
                        help="train once per optimizer from the same start and compare")
    parser.add_argument("--executor", choices=["local", "ray"], default=None,
                        help="--compare-optimizers: here one after the other (local, default) "
                        "or one optimizer per Ray task (study.executor; pip install "
                        "'neurofx[ray]')")
    parser.add_argument("--address", default=None, metavar="HOST:PORT",
                        help="ray: the cluster to join (study.address; default: a local Ray "
                        "instance)")
    add_config_arguments(parser, "study.lr=1e-3")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def resolve_settings(args) -> Config:
    """The resolved configuration: defaults < --config < --set < the flags given. The
    ``--opt-arg`` and ``--model-arg`` pairs are merged into the configured tables."""
    training = "autoencoder" if args.stage == "autoencoder" else "study"
    flags = {"study": {k: (flag, getattr(args, k)) for k, flag in STUDY_FLAGS.items()},
             "autoencoder": {}}
    flags[training].update({k: (f"--{k.replace('_', '-')}", getattr(args, k)) for k in TRAINING})
    cfg = load_config(args.config, args.set, flags)
    if args.opt_arg:
        opt_args = {**cfg.study.opt_args, **parse_pairs(args.opt_arg, "--opt-arg")}
        flags["study"]["opt_args"] = ("--opt-arg", opt_args)
    roles = ("autoencoder",) if args.stage == "autoencoder" else study.ROLES[args.stage]
    pairs = parse_pairs(args.model_arg, "--model-arg", roles)
    if args.stage == "autoencoder":
        sizes = [k for k in dataclasses.asdict(cfg.autoencoder) if k not in TRAINING]
        for key, value in pairs.get("autoencoder", {}).items():
            if key not in sizes:
                raise ConfigError(f"--model-arg autoencoder.{key}: unknown; valid: "
                                  f"{', '.join(sizes)}")
            flags["autoencoder"][key] = (f"--model-arg autoencoder.{key}", value)
    elif pairs:
        merged = {role: dict(v) for role, v in cfg.study.model_args.items()}
        for role, values in pairs.items():
            merged.setdefault(role, {}).update(values)
        flags["study"]["model_args"] = ("--model-arg", merged)
    return load_config(args.config, args.set, flags)


def run(args) -> int:
    cfg = resolve_settings(args)
    plan = study.prepare(cfg, args.stage, args.run, args.store, resume=args.resume,
                         fresh=args.fresh, progress=not args.no_progress,
                         compare_optimizers=args.compare_optimizers)
    for line in plan.lines():
        print(line)
    for line in plan.run().lines():
        print(line)
    return 0
