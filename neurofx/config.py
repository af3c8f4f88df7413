"""Configuration: built-in defaults <- TOML file <- ``--set section.key=value`` <- CLI flags.

One typed, frozen :class:`Config` of sections (``data``, ``broker``, ``runs``, ``research``,
``study``, ``autoencoder``, ``test``, ``train``) is built once by :func:`load_config`; each
later source wins. Commands give their flags the default None, so a flag the user did not type
leaves the configured value alone. Every value is checked where it comes in, and a bad one is a
one-line error naming its origin (file, ``--set`` or flag); names of optimizers and models are
checked too, before any work starts. The ``[broker]`` section is the broker's own
:class:`~neurofx.strategies.broker.BrokerConfig`. Every run writes its resolved configuration
into ``runs/<name>/config.json`` (:func:`snapshot`) so a result can always be traced to the
settings that made it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from neurofx import agents
from neurofx.atomic import write_json_atomic
from neurofx.data.features import TICK_VOLUME_MODES, compute_features
from neurofx.data.info import TIMEFRAMES, bar_step, timeframe_of
from neurofx.data.loaders import FORMATS, load_bars
from neurofx.errors import NeurofxError
from neurofx.nn.optim import OPTIMIZERS, OptimizerError, optimizer_key
from neurofx.strategies.agent import MAX_GROUP
from neurofx.strategies.broker import WEEKDAYS, BrokerConfig


class ConfigError(NeurofxError):
    pass


@dataclass(frozen=True)
class DataSettings:
    """``[data]``: the bar file and how its features are made."""

    file: str = ""              # empty: the bundled EURUSD H1 file
    format: str = "auto"
    source_tz: str = ""         # broker clock of the file (bundled: Europe/Athens)
    tz: str = ""                # convert bar times to this zone (empty: keep broker time)
    tick_volume: str = "normalized"  # or "raw" (the seed's tick_volume / 1000)
    timeframe: str = "H1"       # the bars' spacing the agent is made for; a file must match

    def load_bars(self) -> pd.DataFrame:
        """The bars of this section (empty ``file``: the bundled EURUSD H1 set), whose most
        common spacing must be ``timeframe``."""
        bars = load_bars(self.file or None, fmt=self.format, source_tz=self.source_tz or None,
                         tz=self.tz or None)
        found = timeframe_of(bar_step(pd.DatetimeIndex(bars.index)))
        if len(bars) > 1 and found != self.timeframe:
            raise ConfigError(f"{bars.attrs.get('source', 'bar file')}: its bars are {found} "
                              f"apart, the commands expect {self.timeframe} (data.timeframe); "
                              f"use an {self.timeframe} file, or state the file's timeframe "
                              f"with --set data.timeframe={found}")
        return bars

    def features(self, bars: pd.DataFrame) -> np.ndarray:
        """The seed's per-bar features of ``bars`` with this section's tick-volume mode."""
        return compute_features(bars, tick_volume=self.tick_volume)


@dataclass(frozen=True)
class RunsSettings:
    """``[runs]``: where run folders go."""

    root: str = "runs"


@dataclass(frozen=True)
class ResearchSettings:
    """``[research]``: ``neurofx research`` (flags of the same names override)."""

    policy: str = "random"      # random, neural or real-orl
    passes: int = 16            # random/neural; real-orl runs one pass per deal file
    jobs: int = 0               # processes; 0: the CPU count
    group: int = 16             # passes replayed side by side, one batch actor call per bar
    seed: int = 0               # pass i uses a seed derived from (seed, i)
    start: str = "2023-01-01"   # first bar time, inclusive
    end: str = "2024-01-01"     # end, exclusive
    min_profit: float | str = "auto"  # keep passes with profit >= this (USD); auto: the seed's
    store: str = ""             # trajectory store; empty: <runs.root>/trajectories
    capacity: int = 500         # trajectories a NEW store holds
    deals: list[str] = field(default_factory=list)  # real-orl deal files; empty: the example
    deals_shift_hours: float = 0.0  # real-orl: hours added to deal times (server -> bar clock)
    encoder: str = "tpm"        # neural: model file or registered architecture (tpm, baseline)
    actor: str = "tpm"
    explore: bool = True        # neural: sample the VAE head (false: its mean, --no-explore)
    executor: str = "local"     # local (process pool) or ray (pip install neurofx[ray])
    address: str = ""           # ray: cluster address HOST:PORT; empty: a local Ray instance


@dataclass(frozen=True)
class StudySettings:
    """``[study]``: ``neurofx study encoder|actor`` (flags of the same names override)."""

    iterations: int = 200       # batches of sub-sequences
    batch: int = 16             # sub-sequences trained in parallel
    seq_len: int = 100          # steps per chronological sub-sequence (the seed's 100)
    optimizer: str = "adam"     # neurofx.nn.optim.OPTIMIZERS
    lr: float = 3e-4
    opt_args: dict = field(default_factory=dict)    # other hyper-parameters, e.g. weight_decay
    model: str = "auto"         # registered agent model for every role (tpm, baseline, ...);
    #                             auto: agents.DEFAULT_MODELS (skip encoder, tpm actor/critic)
    model_args: dict = field(default_factory=dict)  # {role: {size: value}}, e.g. encoder.hidden
    seed: int = 0               # sampling and split seed
    val_share: float = 0.2      # share of whole trajectories held out
    val_every: int = 10         # validate every K iterations
    val_batches: int = 2        # fixed validation batches of `batch` sub-sequences
    checkpoint_every: int = 50  # 0: only at the end and on Ctrl-C
    early_stop: int = 0         # stop after P validations without improvement; 0: off
    executor: str = "local"     # --compare-optimizers: local, or ray (one optimizer a task)
    address: str = ""           # ray: cluster address HOST:PORT; empty: a local Ray instance


@dataclass(frozen=True)
class AutoencoderSettings:
    """``[autoencoder]``: ``neurofx study autoencoder``, seed 002's recall study on the bars of
    ``[research]``'s period: its own training sizes and the model's; the optimizer, seed,
    validation and checkpoint settings are ``[study]``'s."""

    iterations: int = 200
    batch: int = 8
    seq_len: int = 60
    lr: float = 1e-3
    bars_in: int = 10           # bars the encoder sees per step
    bars_out: int = 40          # bars the decoder must rebuild
    lstm: list[int] = field(default_factory=lambda: [500, 250, 50])
    latent: int = 25
    decoder: list[int] = field(default_factory=lambda: [40, 80, 160])
    recall_ratio: float = 0.5   # a lag is recalled when its error < ratio x mean square


@dataclass(frozen=True)
class TestSettings:
    """``[test]``: ``neurofx test`` (flags of the same names override)."""

    agent: str = "neural"       # neural or ma-cross
    start: str = "2024-01-01"   # first day, inclusive (bars' clock)
    end: str = "2024-01-31"     # last day, inclusive
    passes: int = 0             # 0: one deterministic pass; N: N stochastic passes
    group: int = 16             # stochastic passes replayed side by side (see research.group)
    seed: int = 0
    stops: str = "research"     # stop-distance rule: research or test
    encoder: str = ""           # empty: <runs.root>/<run>/encoder.npz
    actor: str = ""             # empty: <runs.root>/<run>/actor.npz
    ma_fast_bars: int = 12      # ma-cross: fast SMA length
    ma_slow_bars: int = 48      # ma-cross: slow SMA length
    ma_lots: float = 0.1        # ma-cross: volume per trade
    ma_tp_frac: float = 0.5     # ma-cross: TP distance x 1000 points
    ma_sl_frac: float = 0.3     # ma-cross: SL distance x 1000 points
    baselines: bool = True      # replay flat, buy-and-hold, ma-cross and random beside it
    random_passes: int = 32     # K seeded passes of the random baseline
    walk_forward: str = ""      # YYYY-MM..YYYY-MM: test each month of the range on its own


@dataclass(frozen=True)
class TrainSettings:
    """``[train]``: ``neurofx train``, the research <-> study loop; its research, study and
    test steps read their own sections."""

    rounds: int = 3             # rounds of (study actor -> research with the trained actor)
    passes: int = 0             # research passes per round; 0: research.passes
    min_profit: float | str = "auto"  # keep a round's pass if profit >= this; auto: the seed's 10


@dataclass(frozen=True)
class Config:
    """The resolved configuration of a command, one frozen object per section."""

    data: DataSettings = field(default_factory=DataSettings)
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    runs: RunsSettings = field(default_factory=RunsSettings)
    research: ResearchSettings = field(default_factory=ResearchSettings)
    study: StudySettings = field(default_factory=StudySettings)
    autoencoder: AutoencoderSettings = field(default_factory=AutoencoderSettings)
    test: TestSettings = field(default_factory=TestSettings)
    train: TrainSettings = field(default_factory=TrainSettings)

    def to_dict(self) -> dict:
        """Plain JSON-able sections (what :func:`snapshot` writes)."""
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)}
DEFAULTS: dict[str, dict] = Config().to_dict()
# keys of earlier versions, still accepted: (section, old key) -> (section, key)
RENAMED = {("broker", "deposit_usd"): ("broker", "initial_deposit_usd"),
           ("broker", "commission_per_lot_usd"): ("broker", "commission_usd_per_lot_side"),
           ("broker", "stop_out_pct"): ("broker", "stop_out_level_pct"),
           ("data", "symbol"): ("broker", "symbol")}

_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               list: "a list", dict: "a table"}
# keys that also take a type other than their default's
_ALSO = {("research", "min_profit"): float, ("train", "min_profit"): float}


def _choice(*values: str) -> tuple[Callable, str]:
    return (lambda v: v in values), "one of " + ", ".join(values)


def _at_least(lo: float, note: str = "") -> tuple[Callable, str]:
    return (lambda v: v >= lo), f">= {lo:g}{note}"


def _all(check: Callable, what: str) -> tuple[Callable, str]:
    return (lambda v: all(check(x) for x in v)), what


def _known_optimizer(name: str) -> bool:
    try:
        optimizer_key(name)
    except OptimizerError:
        return False
    return True


def _is_time(text: str, date_only: bool = False) -> bool:
    if not (_DATE if date_only else _TIME).match(text):
        return False
    try:
        datetime.fromisoformat(text)
    except ValueError:  # e.g. 2024-02-30, 2023-13-01
        return False
    return True


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTHS = re.compile(r"^\d{4}-(0[1-9]|1[0-2])\.\.\d{4}-(0[1-9]|1[0-2])$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?$")
_BAR_TIME = (_is_time, "a date YYYY-MM-DD (or YYYY-MM-DD HH:MM) of the calendar")
_DAY = ((lambda v: _is_time(v, date_only=True)), "a date YYYY-MM-DD of the calendar")
_POSITIVE = ((lambda v: v > 0), "> 0")
_SHARE = ((lambda v: 0.0 < v < 1.0), "between 0 and 1 (exclusive)")
_GROUP = ((lambda v: 1 <= v <= MAX_GROUP), f"a group size 1..{MAX_GROUP}")
_OPTIMIZER = (_known_optimizer, "an optimizer name, one of " + ", ".join(OPTIMIZERS))
_SIZES = _all(lambda x: isinstance(x, int) and not isinstance(x, bool) and x >= 1,
              "a list of sizes >= 1, e.g. [64, 32]")
# (check, what the value must be) per key; the type is checked first
_RULES: dict[tuple[str, str], tuple[Callable, str]] = {
    ("data", "format"): _choice(*FORMATS),
    ("data", "tick_volume"): _choice(*TICK_VOLUME_MODES),
    ("data", "timeframe"): _choice(*TIMEFRAMES),
    **{("broker", k): _POSITIVE for k in ("initial_deposit_usd", "leverage",
                                          "contract_size_units", "min_lot", "lot_step",
                                          "max_lot", "point")},
    **{("broker", k): _at_least(0) for k in ("min_spread_points", "commission_usd_per_lot_side",
                                             "stop_out_level_pct", "stops_level_points",
                                             "digits")},
    ("broker", "triple_swap_weekday"): _choice(*WEEKDAYS),
    ("broker", "rollover_hour"): ((lambda v: 0 <= v <= 23), "an hour 0..23 (bars' clock)"),
    ("research", "policy"): _choice("random", "neural", "real-orl"),
    ("research", "start"): _BAR_TIME,
    ("research", "end"): _BAR_TIME,
    ("research", "passes"): _at_least(1),
    ("research", "jobs"): _at_least(0, " (0 = the CPU count)"),
    ("research", "group"): _GROUP,
    ("research", "seed"): _at_least(0),
    ("research", "capacity"): _at_least(1),
    **{(s, "min_profit"): ((lambda v: v == "auto" or isinstance(v, float)),
                           'a number (USD) or "auto"') for s in ("research", "train")},
    ("research", "deals"): _all(lambda x: isinstance(x, str), "a list of file names"),
    ("research", "executor"): _choice("local", "ray"),
    ("study", "executor"): _choice("local", "ray"),
    ("research", "deals_shift_hours"): ((lambda v: -48 <= v <= 48),
                                        "hours between -48 and 48 (server time -> bars' clock)"),
    **{(s, k): _at_least(1) for s in ("study", "autoencoder")
       for k in ("iterations", "batch", "seq_len")},
    **{(s, "lr"): _POSITIVE for s in ("study", "autoencoder")},
    ("study", "optimizer"): _OPTIMIZER,
    ("study", "seed"): _at_least(0),
    ("study", "val_share"): _SHARE,
    ("study", "model"): ((lambda v: v == agents.AUTO or v in agents.names("encoder")
                          or v in agents.names("actor")),
                         "auto or a registered agent model, one of "
                         + ", ".join(sorted(set(agents.names("encoder"))
                                            | set(agents.names("actor"))))),
    ("study", "model_args"): ((lambda v: all(isinstance(x, dict) for x in v.values())),
                              "a table of roles, e.g. {encoder = {hidden = 64}}"),
    ("study", "val_every"): _at_least(1),
    ("study", "val_batches"): _at_least(1),
    ("study", "checkpoint_every"): _at_least(0, " (0 = off)"),
    ("study", "early_stop"): _at_least(0, " (0 = off)"),
    ("autoencoder", "bars_in"): _at_least(1),
    ("autoencoder", "bars_out"): _at_least(1),
    ("autoencoder", "latent"): _at_least(1),
    ("autoencoder", "lstm"): _SIZES,
    ("autoencoder", "decoder"): _SIZES,
    ("autoencoder", "recall_ratio"): _POSITIVE,
    ("test", "agent"): _choice("neural", "ma-cross"),
    ("test", "start"): _DAY,
    ("test", "end"): _DAY,
    ("test", "stops"): _choice("research", "test"),
    ("test", "passes"): _at_least(0, " (0 = one deterministic pass)"),
    ("test", "group"): _GROUP,
    ("test", "seed"): _at_least(0),
    ("test", "ma_fast_bars"): _at_least(1),
    ("test", "ma_slow_bars"): _at_least(2),
    ("test", "ma_lots"): _POSITIVE,
    ("test", "ma_tp_frac"): _POSITIVE,
    ("test", "ma_sl_frac"): _POSITIVE,
    ("test", "random_passes"): _at_least(1),
    ("test", "walk_forward"): ((lambda v: v == "" or bool(_MONTHS.match(v))),
                               "a range of months START..END, e.g. 2023-07..2024-01"),
    ("train", "rounds"): _at_least(1),
    ("train", "passes"): _at_least(0, " (0 = research.passes)"),
}

Flags = Mapping[str, Mapping[str, tuple[str, object]]]


def add_config_arguments(parser, example: str = "broker.initial_deposit_usd=5000") -> None:
    """The ``--config FILE`` and ``--set SECTION.KEY=VALUE`` options every command takes."""
    parser.add_argument("--config", metavar="FILE", default=None, help="TOML configuration")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help=f"override a config value, e.g. {example} (repeatable; flags "
                             "win over --set)")


def load_config(path: str | os.PathLike | None = None, overrides: list[str] = (),
                flags: Flags | None = None) -> Config:
    """Defaults, then the TOML file (if any), then overrides like ``study.lr=3e-4``, then the
    flags given: ``{section: {key: (flag name, value)}}``, a value of None meaning "not given"."""
    cfg = {name: dict(values) for name, values in DEFAULTS.items()}
    if path:
        p = Path(path)
        try:
            with p.open("rb") as fh:
                _merge(cfg, tomllib.load(fh), str(p))
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found") from None
        except IsADirectoryError:
            raise ConfigError(f"{p}: is a folder, not a TOML file; pass the file") from None
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read the config file ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: invalid TOML: {exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{p}: not UTF-8 text; save the TOML file as UTF-8") from None
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. study.lr=3e-4")
        section, _, name = key.strip().partition(".")
        _merge(cfg, {section: {name: parse_value(raw.strip())}}, f"--set {item}")
    for section, given in (flags or {}).items():
        for key, (flag, value) in given.items():
            if key not in cfg[section]:
                raise ConfigError(f"{flag}: unknown; valid: {', '.join(cfg[section])}")
            if value is not None:
                cfg[section][key] = _checked(section, key, value, flag)
    return Config(**{name: SECTIONS[name](**values) for name, values in cfg.items()})


def parse_value(raw: str):
    """A TOML value (``3e-4``, ``true``, ``[64, 32]``); a bare word is a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def parse_pairs(items: list[str], flag: str, roles: tuple[str, ...] | None = None) -> dict:
    """``KEY=VALUE`` (or ``ROLE.KEY=VALUE`` when ``roles``) items -> dict of TOML values."""
    out: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if roles is None:
            if not sep or not key:
                raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE, e.g. weight_decay=0.1")
            out[key] = parse_value(raw.strip())
            continue
        role, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise ConfigError(f"{flag} {item!r}: expected ROLE.KEY=VALUE, e.g. encoder.hidden=64")
        if role not in roles:
            raise ConfigError(f"{flag} {item!r}: role {role!r} is not trained by this stage; "
                              f"valid: {', '.join(roles)}")
        out.setdefault(role, {})[name] = parse_value(raw.strip())
    return out


def _merge(cfg: dict, new: dict, origin: str) -> None:
    for section, values in new.items():
        if section not in cfg:
            raise ConfigError(f"{origin}: unknown section [{section}]; valid: {', '.join(cfg)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: [{section}] must be a table")
        for key, value in values.items():
            target, name = RENAMED.get((section, key), (section, key))
            if name not in cfg[target]:
                raise ConfigError(f"{origin}: unknown key {section}.{key}; valid: "
                                  f"{', '.join(cfg[section])}")
            cfg[target][name] = _checked(target, name, value, origin)


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


_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_run_name(name: str, flag: str = "--run") -> str:
    """``name`` if it is a valid run name (a folder name under ``runs.root``), else one line."""
    if not _RUN_NAME.match(name):
        raise ConfigError(f"{flag} {name!r}: use letters, digits, '.', '_' or '-'")
    return name


def run_dir(cfg: Config, name: str) -> Path:
    """``<runs.root>/<name>``, created if needed."""
    path = Path(cfg.runs.root) / check_run_name(name)
    path.mkdir(parents=True, exist_ok=True)
    return path


def snapshot(cfg: Config, folder: Path, command: str) -> Path:
    """Write the resolved config of a run into ``folder/config.json``."""
    path = folder / "config.json"
    write_json_atomic(path, {"command": command, "config": cfg.to_dict()})
    return path
