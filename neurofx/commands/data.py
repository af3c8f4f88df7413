"""`neurofx data`: inspect bar files (placeholder until the data helper lands)."""

from neurofx.errors import NeurofxError


def add_arguments(parser):
    parser.add_argument("rest", nargs="*")


def run(args):
    raise NeurofxError("'neurofx data' is not built yet")
