"""Configuration: built-in defaults <- TOML file <- ``--set section.key=value`` <- CLI flags.

Each later source wins. Commands give their flags the default None, so a flag the user did not
type leaves the configured value alone (``apply_flags``). Every value is checked where it comes
in, and a bad one is a one-line error naming its origin (file, ``--set`` or flag). Every run
writes its resolved configuration into ``runs/<name>/config.json`` so a result can always be
traced to the settings that made it.
"""

from __future__ import annotations

import copy
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path

from neurofx.atomic import write_json_atomic  # study code imports it from here too
from neurofx.errors import NeurofxError

DEFAULTS: dict[str, dict] = {
    "data": {
        "file": "",              # empty: the bundled EURUSD H1 file
        "format": "auto",
        "source_tz": "",         # broker clock of the file (bundled: Europe/Athens)
        "tz": "",                # convert bar times to this zone (empty: keep broker time)
        "symbol": "EURUSD",
        "tick_volume": "normalized",  # or "raw" (the seed's tick_volume / 1000)
    },
    "broker": {
        "deposit_usd": 10_000.0,
        "leverage": 100.0,
        "min_spread_points": 5.0,
        "commission_per_lot_usd": 3.5,
        "stop_out_pct": 50.0,
    },
    "runs": {"root": "runs"},
    "research": {                # neurofx research (flags of the same names override)
        "policy": "random",      # random, neural or real-orl
        "passes": 16,            # random/neural; real-orl runs one pass per deal file
        "jobs": 0,               # processes; 0: the CPU count
        "seed": 0,               # pass i uses a seed derived from (seed, i)
        "start": "2023-01-01",   # first bar time, inclusive
        "end": "2024-01-01",     # end, exclusive
        "min_profit": "auto",    # keep passes with profit >= this (USD); auto: 10, real-orl -10000
        "store": "",             # trajectory store; empty: <runs.root>/trajectories
        "capacity": 500,         # trajectories a NEW store holds
        "deals": [],             # real-orl deal files; empty: the bundled example
        "encoder": "tpm",        # neural: model file or registered architecture (tpm, baseline)
        "actor": "tpm",
        "explore": True,         # neural: sample the VAE head (false: its mean, --no-explore)
    },
    "test": {                    # neurofx test (flags of the same names override)
        "agent": "neural",       # neural or ma-cross
        "start": "2024-01-01",   # first day, inclusive (bars' clock)
        "end": "2024-01-31",     # last day, inclusive
        "passes": 0,             # 0: one deterministic pass; N: N stochastic passes
        "seed": 0,
        "stops": "research",     # stop-distance rule: research or test
        "encoder": "",           # empty: <runs.root>/<run>/encoder.npz
        "actor": "",             # empty: <runs.root>/<run>/actor.npz
        "ma_fast_bars": 12,      # ma-cross: fast SMA length
        "ma_slow_bars": 48,      # ma-cross: slow SMA length
        "ma_lots": 0.1,          # ma-cross: volume per trade
        "ma_tp_frac": 0.5,       # ma-cross: TP distance x 1000 points
        "ma_sl_frac": 0.3,       # ma-cross: SL distance x 1000 points
    },
}

_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               list: "a list of strings"}
# keys that also take a type other than their default's
_ALSO = {("research", "min_profit"): float}


def _choice(*values: str) -> tuple[Callable, str]:
    return (lambda v: v in values), "one of " + ", ".join(values)


def _at_least(lo: float, note: str = "") -> tuple[Callable, str]:
    return (lambda v: v >= lo), f">= {lo:g}{note}"


_POSITIVE = ((lambda v: v > 0), "> 0")
# (check, what the value must be) per key; the type is checked first
_RULES: dict[tuple[str, str], tuple[Callable, str]] = {
    ("research", "policy"): _choice("random", "neural", "real-orl"),
    ("research", "passes"): _at_least(1),
    ("research", "jobs"): _at_least(0, " (0 = the CPU count)"),
    ("research", "seed"): _at_least(0),
    ("research", "capacity"): _at_least(1),
    ("research", "min_profit"): ((lambda v: v == "auto" or isinstance(v, float)),
                                 'a number (USD) or "auto"'),
    ("research", "deals"): ((lambda v: all(isinstance(x, str) for x in v)),
                            "a list of file names"),
    ("test", "agent"): _choice("neural", "ma-cross"),
    ("test", "stops"): _choice("research", "test"),
    ("test", "passes"): _at_least(0, " (0 = one deterministic pass)"),
    ("test", "seed"): _at_least(0),
    ("test", "ma_fast_bars"): _at_least(1),
    ("test", "ma_slow_bars"): _at_least(2),
    ("test", "ma_lots"): _POSITIVE,
    ("test", "ma_tp_frac"): _POSITIVE,
    ("test", "ma_sl_frac"): _POSITIVE,
}


class ConfigError(NeurofxError):
    pass


def add_config_arguments(parser, example: str = "broker.deposit_usd=5000") -> None:
    """The ``--config FILE`` and ``--set SECTION.KEY=VALUE`` options every command takes."""
    parser.add_argument("--config", metavar="FILE", default=None, help="TOML configuration")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help=f"override a config value, e.g. {example} (repeatable; flags "
                             "win over --set)")


def load_config(path: str | os.PathLike | None = None, overrides: list[str] = ()) -> dict:
    """Defaults, then the TOML file (if any), then overrides like ``study.lr=3e-4``."""
    cfg = copy.deepcopy(DEFAULTS)
    if path:
        p = Path(path)
        try:
            with p.open("rb") as fh:
                _merge(cfg, tomllib.load(fh), str(p))
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. study.lr=3e-4")
        section, _, name = key.strip().partition(".")
        _merge(cfg, {section: {name: _parse_value(raw.strip())}}, f"--set {item}")
    return cfg


def _parse_value(raw: str):
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw  # a bare word is a string


def _merge(cfg: dict, new: dict, origin: str) -> None:
    for section, values in new.items():
        if section not in cfg:
            raise ConfigError(f"{origin}: unknown section [{section}]; valid: {', '.join(cfg)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: [{section}] must be a table")
        for key, value in values.items():
            if key not in cfg[section]:
                raise ConfigError(f"{origin}: unknown key {section}.{key}; valid: "
                                  f"{', '.join(cfg[section])}")
            cfg[section][key] = _checked(section, key, value, origin)


def _checked(section: str, key: str, value, origin: str):
    """``value`` for ``section.key`` (an int becomes a float where a float is expected), or a
    one-line error naming ``origin``: a file, ``--set ...`` or a flag (``--passes``)."""
    default = DEFAULTS[section][key]
    types = {type(default), _ALSO.get((section, key), type(default))}
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if float in types and is_int:
        value = float(value)
    if type(value) not in types:
        what = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in sorted(types, key=str))
        raise _bad(origin, section, key, value, what)
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad(origin, section, key, value, "a finite number")
    check, what = _RULES.get((section, key), (None, ""))
    if check is not None and not check(value):
        raise _bad(origin, section, key, value, what)
    return value


def _bad(origin: str, section: str, key: str, value, what: str) -> ConfigError:
    if origin.startswith("--") and not origin.startswith("--set"):
        shown = value if isinstance(value, int | float) else repr(value)
        return ConfigError(f"{origin} {shown}: must be {what}")
    return ConfigError(f"{origin}: {section}.{key} must be {what}, got {value!r}")


def apply_flags(cfg: dict, section: str, flags: Mapping[str, tuple[str, object]]) -> dict:
    """Let the CLI flags the user gave win over the configuration.

    ``flags`` maps a key of ``section`` to (flag name, parsed value); a value of None means the
    flag was not given and leaves the configured value. Returns ``cfg[section]``.
    """
    for key, (flag, value) in flags.items():
        if value is not None:
            cfg[section][key] = _checked(section, key, value, flag)
    return cfg[section]


_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def run_dir(cfg: dict, name: str) -> Path:
    """``<runs.root>/<name>``, created if needed."""
    if not _RUN_NAME.match(name):
        raise ConfigError(f"run name {name!r}: use letters, digits, '.', '_' or '-'")
    path = Path(cfg["runs"]["root"]) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def snapshot(cfg: dict, folder: Path, command: str) -> Path:
    """Write the resolved config of a run into ``folder/config.json``."""
    path = folder / "config.json"
    write_json_atomic(path, {"command": command, "config": cfg})
    return path
