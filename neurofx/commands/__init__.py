"""The ``neurofx`` command line: one subcommand per pipeline step.

Each module here parses its arguments into the typed configuration, calls its step in
:mod:`neurofx.pipeline` and prints the result. Exit codes: 0 ok, 2 usage or input error (one
line on stderr, no traceback unless --debug), 130 interrupted.
"""


from __future__ import annotations

import argparse
import importlib
import sys

from neurofx import __version__
from neurofx.errors import NeurofxError

# subcommand -> module in neurofx.commands providing add_arguments(parser) and run(args)
COMMANDS = {
    "data": "Inspect and validate bar files",
    "research": "Collect trajectories by replaying bars with a policy",
    "study": "Train the encoder, actor and critic from trajectories",
    "test": "Replay a test period with the trained agent",
    "report": "Regenerate or compare run reports",
    "devices": "List OpenCL platforms/devices and the one in use",
    "quickstart": "Run research -> study -> test -> report on the bundled data",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neurofx", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"neurofx {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"neurofx.commands.{name}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except NeurofxError as exc:
        if args.debug:
            raise
        print(f"neurofx {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"neurofx {args.command}: interrupted", file=sys.stderr)
        return 130
