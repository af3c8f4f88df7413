"""The ``neurofx`` console script (the commands are :mod:`neurofx.commands`)."""

from __future__ import annotations

import sys

from neurofx import commands


def main(argv: list[str] | None = None) -> int:
    """Run ``neurofx ARGV``; returns the exit code."""
    return commands.main(argv)


if __name__ == "__main__":
    sys.exit(main())
