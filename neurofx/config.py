"""Configuration: built-in defaults <- TOML file <- ``--set section.key=value`` overrides.

Every run writes its resolved configuration into ``runs/<name>/config.json`` so a result can
always be traced to the settings that made it.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
import tomllib
from pathlib import Path

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
}


class ConfigError(NeurofxError):
    pass


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
            default = cfg[section][key]
            is_int = isinstance(value, int) and not isinstance(value, bool)
            if isinstance(default, float) and is_int:
                value = float(value)
            if type(value) is not type(default):
                raise ConfigError(f"{origin}: {section}.{key} must be {type(default).__name__}, "
                                  f"got {value!r}")
            cfg[section][key] = value


_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def run_dir(cfg: dict, name: str) -> Path:
    """``<runs.root>/<name>``, created if needed."""
    if not _RUN_NAME.match(name):
        raise ConfigError(f"run name {name!r}: use letters, digits, '.', '_' or '-'")
    path = Path(cfg["runs"]["root"]) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json_atomic(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def snapshot(cfg: dict, folder: Path, command: str) -> Path:
    """Write the resolved config of a run into ``folder/config.json``."""
    path = folder / "config.json"
    write_json_atomic(path, {"command": command, "config": cfg})
    return path
