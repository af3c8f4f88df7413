"""`neurofx report`: not built yet (see the project's open issues)."""

from neurofx.errors import NeurofxError


def add_arguments(parser):
    parser.add_argument("rest", nargs="*", help="arguments of the future command")


def run(args):
    raise NeurofxError("'neurofx report' is not built yet; it arrives with its own issue")
