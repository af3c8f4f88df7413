"""The ``neurofx`` command line: one subcommand per pipeline step.

Each module here parses its arguments into the typed configuration, calls its step in
:mod:`neurofx.pipeline` and prints the result. Exit codes: 0 ok, 2 usage or input error (one
line on stderr, no traceback unless --debug), 130 interrupted.
"""


from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
import warnings

from pyopencl import CompilerWarning

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
    "train": "Run the research <-> study loop: research, encoder, R rounds of actor + research",
}


class OneLineParser(argparse.ArgumentParser):
    """argparse with usage errors in neurofx's one-line form (exit code 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="neurofx", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"neurofx {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks and OpenCL compiler output on errors")
    parser.add_argument("--verbose", action="store_true",
                        help="name the OpenCL device in use on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"neurofx.commands.{name}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def os_error_line(exc: OSError) -> str:
    """An OS error as one line naming the path and the cause."""
    where = f"{exc.filename}: " if exc.filename else ""
    cause = exc.strerror or str(exc)
    fix = {errno.ENOSPC: "free disk space and run the command again",
           errno.EACCES: "check the permissions of the file or folder",
           errno.EPERM: "check the permissions of the file or folder",
           errno.EROFS: "choose a writable folder (e.g. --set runs.root=...)"}.get(exc.errno)
    return f"{where}{cause}" + (f" ({fix})" if fix else "")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # children (research workers) inherit these through the environment
    os.environ["NEUROFX_VERBOSE"] = "1" if args.verbose else "0"
    if args.debug:
        os.environ["PYOPENCL_COMPILER_OUTPUT"] = "1"
    else:
        warnings.filterwarnings("ignore", category=CompilerWarning)
    try:
        return int(args._run(args) or 0)
    except (NeurofxError, OSError) as exc:
        if args.debug:
            raise
        text = os_error_line(exc) if isinstance(exc, OSError) else str(exc)
        print(f"neurofx {args.command}: error: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"neurofx {args.command}: interrupted", file=sys.stderr)
        return 130
