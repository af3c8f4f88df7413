"""`neurofx data info|validate [FILE]`: inspect and validate bar files."""

from __future__ import annotations

from neurofx.data.info import describe, format_info
from neurofx.data.loaders import FORMATS, load_bars, parse_column_map
from neurofx.data.validate import REPAIR_MODES


def _add_load_options(p) -> None:
    p.add_argument("--format", dest="fmt", choices=FORMATS, default="auto",
                   help="file format (default: from the extension and header)")
    p.add_argument("--columns", metavar="MAP", default=None,
                   help="column map for generic CSV/parquet, e.g. time=Date,open=Open,...")
    p.add_argument("--source-tz", metavar="TZ", default=None,
                   help="clock the file's times are in (bundled file: Europe/Athens)")
    p.add_argument("--tz", metavar="TZ", default=None,
                   help="convert bar times to this clock, e.g. UTC (needs a source clock)")
    p.add_argument("--repair", choices=REPAIR_MODES, default=None,
                   help="drop or fix bad rows instead of stopping at the first one")


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = sub.add_parser("info", help="range, bars per year, gaps, spread/tick-volume stats",
                          description="Print range, bars per year, gaps and spread/tick-volume "
                          "statistics of a bar file (default: the bundled EURUSD H1 file).")
    info.add_argument("file", nargs="?", default=None, help="bar file (default: bundled)")
    info.add_argument("--symbol", default=None,
                      help="symbol name (default: guessed from the file name)")
    _add_load_options(info)
    check = sub.add_parser("validate", help="check a bar file and report problems",
                           description="Load and validate a bar file; exit 2 naming the first "
                           "bad line, or print what --repair changed.")
    check.add_argument("file", nargs="?", default=None, help="bar file (default: bundled)")
    _add_load_options(check)


def _load(args):
    column_map = parse_column_map(args.columns) if args.columns else None
    return load_bars(args.file, fmt=args.fmt, column_map=column_map, source_tz=args.source_tz,
                     tz=args.tz, repair=args.repair)


def run(args) -> int:
    bars = _load(args)
    if args.action == "info":
        print(format_info(describe(bars, symbol=args.symbol)))
        return 0
    for line in bars.attrs["repairs"]:
        print(f"repair: {line}")
    first = f"{bars.index[0]:%Y-%m-%d %H:%M}" if len(bars) else "-"
    last = f"{bars.index[-1]:%Y-%m-%d %H:%M}" if len(bars) else "-"
    print(f"ok: {bars.attrs['source']}: {len(bars):,} bars, {first} -> {last} "
          f"({bars.attrs['format']})")
    return 0
