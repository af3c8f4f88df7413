"""`neurofx report RUN [RUN ...]`: regenerate one run's report, or compare several;
`neurofx report --mt5 REPORT`: check neurofx's statistics against an MT5 report's Results.

The step is :mod:`neurofx.pipeline.report`; this module parses the arguments and prints. See
docs/testing-and-reports.md.
"""

from __future__ import annotations

import webbrowser

from neurofx.config import add_config_arguments, load_config
from neurofx.pipeline import report


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="*", metavar="RUN",
                        help="run name (report in <runs.root>/NAME/test/) or a report folder")
    parser.add_argument("--mt5", metavar="REPORT", default=None,
                        help="compare neurofx's statistics of an MT5 Trade History Report's "
                             "(.xlsx/.html) deals with its Results (saved to --out, default "
                             "<runs.root>/mt5/<report name>)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output folder (default: one run in place; several: "
                        "<runs.root>/compare/<A>_vs_<B>)")
    parser.add_argument("--open", action="store_true",
                        help="open the HTML in the default web browser")
    add_config_arguments(parser, "runs.root=elsewhere")


def run(args) -> int:
    cfg = load_config(args.config, args.set)
    if args.mt5:
        for line in report.run_mt5_comparison(cfg, args.mt5, args.out).lines():
            print(line)
        return 0
    result = report.run_report(cfg, args.runs, args.out)
    for line in result.lines():
        print(line)
    if args.open:
        webbrowser.open(result.path.resolve().as_uri())
    return 0
