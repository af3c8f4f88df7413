"""The quickstart chains the ordinary commands; check the chain it runs."""

from types import SimpleNamespace

from neurofx.commands import build_parser
from neurofx.commands.quickstart import steps


def test_quickstart_runs_research_study_test_with_parseable_arguments():
    args = SimpleNamespace(run="qs", size="small", optimizer="adam-mini", seed=3, jobs=2,
                           config=None, model="baseline")
    chain = steps(args)
    assert [c[0] for c in chain] == ["research", "study", "study", "test"]
    assert "--passes" not in chain[3]  # the deterministic agent (its VAE mean)
    assert chain[1][1] == "encoder" and chain[2][1] == "actor"
    assert "--min-profit=-1e9" in chain[0] and chain[0][chain[0].index("--passes") + 1] == "16"
    parser = build_parser()
    for argv in chain:  # every step is a valid command line of the real CLI
        parsed = parser.parse_args(argv)
        assert parsed.command == argv[0]
    study = parser.parse_args(chain[1])
    assert study.store == "runs/qs/trajectories" and study.run == "qs"
    assert study.optimizer == "adam-mini" and study.iterations == 150


def test_quickstart_defaults_to_the_fitted_encoder_and_reduced_tpm_actor():
    parser = build_parser()
    args = parser.parse_args(["quickstart"])
    assert args.model == "tpm" and args.size == "small"
    chain = steps(args)
    encoder, actor = parser.parse_args(chain[1]), parser.parse_args(chain[2])
    assert encoder.model == "auto" and actor.model == "tpm"  # auto: the skip encoder
    assert encoder.iterations == actor.iterations == 60
    assert encoder.model_arg == []
    assert actor.model_arg == ["actor.hidden=64", "actor.layers=2", "critic.hidden=64",
                               "critic.layers=2"]
    # the overrides are valid sizes of the registered builders
    from neurofx import agents
    from neurofx.commands.study import parse_pairs

    for stage, parsed in (("encoder", encoder), ("actor", actor)):
        roles = ("encoder",) if stage == "encoder" else ("actor", "critic")
        for role, overrides in parse_pairs(parsed.model_arg, "--model-arg", roles).items():
            assert agents.describe(role, "tpm", **overrides)["hidden"] == overrides["hidden"]
