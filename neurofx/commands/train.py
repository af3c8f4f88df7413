"""`neurofx train --run NAME --rounds R`: the seed's research <-> study loop in one command.

initial research -> study encoder -> R rounds of (study actor -> research with the trained
actor, stochastic) -> test, each step printed as the command that does the same
(:mod:`neurofx.pipeline.train`; docs/train.md). The research and study flags are those of
``neurofx research`` and ``neurofx study`` (borrowed from their parsers, same help and config
keys); ``--resume`` continues a stopped run, ``--fresh`` starts it over.
"""

from __future__ import annotations

import argparse
import sys

from neurofx.commands import research as research_command
from neurofx.commands import study as study_command
from neurofx.config import Config, add_config_arguments, load_config, parse_pairs
from neurofx.pipeline import research, study, train

RESEARCH_OPTIONS = ("--policy", "--passes", "--jobs", "--group", "--start", "--end", "--deals",
                    "--deals-shift-hours", "--capacity")
STUDY_OPTIONS = ("--iterations", "--batch", "--seq-len", "--optimizer", "--lr", "--opt-arg",
                 "--model", "--model-arg", "--val-share", "--val-every", "--val-batches",
                 "--checkpoint-every", "--early-stop")
ROLES = (*study.ROLES["encoder"], *study.ROLES["actor"])
# section -> key -> (flag, argparse dest); --seed seeds research, study and test
FLAGS = {
    "train": {"rounds": ("--rounds", "rounds"), "passes": ("--round-passes", "round_passes"),
              "min_profit": ("--min-profit", "min_profit")},
    "research": {**{k: (f, k) for k, f in research_command.FLAGS.items()
                    if f in RESEARCH_OPTIONS}, "seed": ("--seed", "seed")},
    "study": {**{k: (f, k) for k, f in study_command.STUDY_FLAGS.items()
                 if f in STUDY_OPTIONS}, **{k: (f"--{k.replace('_', '-')}", k)
                                            for k in study_command.TRAINING},
              "seed": ("--seed", "seed")},
    "test": {"seed": ("--seed", "seed")},
    "data": {"file": ("--data", "data")},
}


def borrow(group, add_arguments, options: tuple[str, ...]) -> None:
    """Add ``options`` to ``group`` as another command's ``add_arguments`` defines them (same
    flags, defaults and help: defined once, there). argparse's ``parents=`` would take all of
    that command's arguments; this takes the named ones, with the private ``_add_action``
    ``parents=`` itself uses."""
    donor = argparse.ArgumentParser(add_help=False)
    add_arguments(donor)
    for action in donor._actions:
        if action.option_strings and action.option_strings[0] in options:
            group._add_action(action)


def add_arguments(parser) -> None:
    parser.add_argument("--run", required=True, metavar="NAME",
                        help="run folder under runs.root: its store (trajectories/), models, "
                        "rounds.csv, train_state.json and test report")
    g = parser.add_argument_group("the loop ([train])")
    g.add_argument("--rounds", type=int, default=None, metavar="R",
                   help="rounds of (study actor -> research with it) (train.rounds, default 3)")
    g.add_argument("--round-passes", type=int, default=None, metavar="N",
                   help="research passes per round (train.passes; default 0: --passes)")
    g.add_argument("--min-profit", type=float, default=None, metavar="USD",
                   help="keep a round's pass if its profit >= this (train.min_profit; default "
                   "auto: the seed's 10 for neural research); write a negative value with '=', "
                   "e.g. --min-profit=-1e9")
    g.add_argument("--seed", type=int, default=None,
                   help="seed of research (round k: seed + k), study and test (default 0)")
    g.add_argument("--data", default=None, metavar="FILE",
                   help="bar file of every step (data.file; default the bundled EURUSD H1)")
    g.add_argument("--resume", action="store_true",
                   help="continue a stopped run: finished steps are skipped, a study continues "
                   "from its checkpoint, research skips the passes its store decided")
    g.add_argument("--fresh", action="store_true",
                   help="start the run over: its state, rounds.csv, store and checkpoints go")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    borrow(parser.add_argument_group("initial research (as neurofx research; [research])"),
           research_command.add_arguments, RESEARCH_OPTIONS)
    borrow(parser.add_argument_group("training (as neurofx study; [study])"),
           study_command.add_arguments, STUDY_OPTIONS)
    add_config_arguments(parser, "train.rounds=5")


def resolve_settings(args) -> Config:
    """The resolved configuration: defaults < --config < --set < the flags given; the
    ``--opt-arg`` and ``--model-arg`` pairs (roles encoder, actor, critic) are merged into
    ``[study]``'s tables as ``neurofx study`` merges them."""
    flags = {section: {key: (flag, getattr(args, dest)) for key, (flag, dest) in keys.items()}
             for section, keys in FLAGS.items()}
    cfg = load_config(args.config, args.set, flags)
    tables = {"opt_args": dict(cfg.study.opt_args),
              "model_args": {role: dict(v) for role, v in cfg.study.model_args.items()}}
    tables["opt_args"].update(parse_pairs(args.opt_arg, "--opt-arg"))
    for role, values in parse_pairs(args.model_arg, "--model-arg", ROLES).items():
        tables["model_args"].setdefault(role, {}).update(values)
    flags["study"].update(opt_args=("--opt-arg", tables["opt_args"]),
                          model_args=("--model-arg", tables["model_args"]))
    return load_config(args.config, args.set, flags)


def run(args) -> int:
    cfg = resolve_settings(args)
    common = ["--config", args.config] if args.config else []
    common += [a for item in args.set for a in ("--set", item)]
    common += ["--set", f"data.file={args.data}"] if args.data else []
    plan = train.prepare(cfg, args.run, resume=args.resume, fresh=args.fresh,
                         progress=not args.no_progress, common=common)
    bar = train.PassEvents() if args.no_progress else research_command.PassBar()
    try:
        result = plan.run(say=lambda line: print(line, flush=True), bar=bar)
    except KeyboardInterrupt as exc:
        if isinstance(exc, research.ResearchInterrupted):
            print(exc.result.to_text(), file=sys.stderr)
        step = plan.state.current if plan.state is not None else None
        print(f"neurofx train: stopped{f' in step {step}' if step else ''}; continue with "
              f"'neurofx train --run {args.run} --resume'", file=sys.stderr)
        raise
    for line in result.lines():
        print(line)
    return 0
