"""`neurofx quickstart`: the whole pipeline on the bundled data with small settings.

research (random policy, a few passes of 2023) -> study encoder -> study actor ->
test (January 2024, the deterministic agent (its VAE mean), beside the baselines: flat,
buy-and-hold, SMA crossover, 32 random passes matched to the agent's trades) -> report.
Each step is an ordinary neurofx command, printed before it runs, so the user can re-run or
tune any step by hand (see the README).

The agent (``--model tpm``, the default) is the study's default encoder (``skip``: a ridge
forecast fitted in closed form, which beats the linear baselines the seed's TPM encoder loses
to; docs/models.md) and the seed's TPM actor and critic at REDUCED sizes (:data:`REDUCED`) and
fewer iterations, so the whole chain fits in 10 minutes on a 2-core CPU; ``--model baseline``
runs the small MLPs instead.
"""

from __future__ import annotations

import shlex
import time

from neurofx import commands

# model -> size -> (passes, encoder iterations, actor iterations): a few minutes on 2 cores
SIZES = {"tpm": {"small": (16, 60, 60), "tiny": (8, 5, 5)},
         "baseline": {"small": (16, 150, 150), "tiny": (8, 20, 20)}}
ENCODER_MODEL = {"tpm": "auto"}
# the seed's actor sizes (hidden 256, 9 cross-attention layers) train far too slowly for a demo
# (the encoder is fitted: it has no size to reduce)
REDUCED = {"tpm": {"encoder": [],
                   "actor": ["actor.hidden=64", "actor.layers=2",
                             "critic.hidden=64", "critic.layers=2"]},
           "baseline": {"encoder": [], "actor": []}}


def add_arguments(parser):
    parser.add_argument("--run", default="quickstart", help="run name (default quickstart)")
    parser.add_argument("--size", choices=("small", "tiny"), default="small",
                        help="small: the README's demo; tiny: a smoke test")
    parser.add_argument("--model", choices=sorted(SIZES), default="tpm",
                        help="tpm: the seed's models at reduced sizes (default); baseline: MLPs")
    parser.add_argument("--optimizer", default="adam-mini",
                        help="optimizer for study (default adam-mini)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=None, help="research processes")
    parser.add_argument("--config", help="TOML config passed to every step")


def steps(args) -> list[list[str]]:
    model = getattr(args, "model", "tpm")
    passes, enc_iters, act_iters = SIZES[model][args.size]
    store = f"runs/{args.run}/trajectories"
    common = ["--config", args.config] if args.config else []
    # keep every pass: the encoder learns from all bars; the actor clones the profitable ones
    research = ["research", "--passes", str(passes), "--seed", str(args.seed), "--store", store,
                "--min-profit=-1e9"]
    if args.jobs:
        research += ["--jobs", str(args.jobs)]
    study = ["--store", store, "--run", args.run, "--optimizer", args.optimizer,
             "--seed", str(args.seed), "--seq-len", "50", "--no-progress", "--fresh"]
    # tpm: the study's default encoder (the fitted skip model) under the seed's actor
    encoder_model = ENCODER_MODEL.get(model, model)

    def sizes(stage):
        return [a for item in REDUCED[model][stage] for a in ("--model-arg", item)]

    return [
        research + common,
        ["study", "encoder", "--iterations", str(enc_iters), *study, "--model", encoder_model,
         *sizes("encoder"), *common],
        ["study", "actor", "--iterations", str(act_iters), *study, "--model", model,
         *sizes("actor"), *common],
        # deterministic: the actor's mean action (the signed decoding, docs/actions.md, makes
        # it trade; `--passes N` adds stochastic passes)
        ["test", "--run", args.run, *common],
    ]


def run(args):
    t0 = time.perf_counter()
    reduced = [x for v in REDUCED[args.model].values() for x in v]
    if reduced:
        print(f"quickstart: the seed's {args.model} actor and critic at REDUCED sizes "
              f"({', '.join(reduced)}) and few iterations, to finish in minutes; train full "
              f"sizes with 'neurofx study' (see README)", flush=True)
    for argv in steps(args):
        print(f"\n$ neurofx {shlex.join(argv)}", flush=True)
        rc = commands.main(argv)
        if rc:
            return rc
    print(f"\nquickstart done in {time.perf_counter() - t0:.0f} s; open "
          f"runs/{args.run}/test/report.html (or: neurofx report runs/{args.run}/test --open)")
    return 0
