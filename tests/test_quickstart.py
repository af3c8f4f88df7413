"""The quickstart chains the ordinary commands; check the chain it runs."""

from types import SimpleNamespace

from neurofx.cli import build_parser
from neurofx.commands.quickstart import steps


def test_quickstart_runs_research_study_test_with_parseable_arguments():
    args = SimpleNamespace(run="qs", size="small", optimizer="adam-mini", seed=3, jobs=2,
                           config=None)
    chain = steps(args)
    assert [c[0] for c in chain] == ["research", "study", "study", "test"]
    assert chain[1][1] == "encoder" and chain[2][1] == "actor"
    assert "--min-profit=-1e9" in chain[0] and chain[0][chain[0].index("--passes") + 1] == "16"
    parser = build_parser()
    for argv in chain:  # every step is a valid command line of the real CLI
        parsed = parser.parse_args(argv)
        assert parsed.command == argv[0]
    study = parser.parse_args(chain[1])
    assert study.store == "runs/qs/trajectories" and study.run == "qs"
    assert study.optimizer == "adam-mini" and study.iterations == 150
