"""`TrajectoryStore`: a directory of trajectories with the seed's replay-buffer rules.

Layout (format ``neurofx-trajectories``, described in docs/trajectories.md)::

    store/
      manifest.json           the commit point: format, version, capacity, next_id, entries
      features_<key>.npy      version 2: the feature matrix of the bar file (newest bar first,
                              memory-mapped by readers); key = hash of bars + feature settings
      traj_000001.npz         one file per trajectory (deflated .npy members, no pickle):
                              version 1 the states (T, 1080), version 2 the bar index (T,)

Version 2 keeps one feature matrix per store and per step only the bar index plus account,
action and rewards; states are windows of the matrix built on read (``StateWindows``), the
same values version 1 stores. Version 1 stores are read, grow as version 1, and
:func:`migrate_to_v2` rewrites them.

A write puts the ``.npz`` under a temporary name, fsyncs and renames it, then rewrites the
manifest the same way (:mod:`neurofx.atomic`) and fsyncs the folder. Whatever moment the
writer dies at, the manifest names only complete files; files it does not name (and temporary
files) are ignored on load and deleted by the next write.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurofx.atomic import fsync_dir, is_temp_name, write_bytes_atomic, write_json_atomic
from neurofx.data.features import FeatureMatrix, StateWindows
from neurofx.errors import NeurofxError
from neurofx.locks import LOCK_NAME
from neurofx.schema import BAR_FEATURES

from .trajectory import ARRAY_SPECS, Trajectory, check_arrays

FORMAT_NAME = "neurofx-trajectories"
FORMAT_VERSION = 2  # what new stores of research passes are written as
VERSIONS = (1, 2)   # what this neurofx reads
MANIFEST = "manifest.json"
DEFAULT_CAPACITY = 500  # seed MaxReplayBuffer
DEFAULT_MIN_PROFIT = 10.0  # seed Research MinProfit (ResearchRealORL uses -10000)
_FILE_RE = re.compile(r"traj_\d{6,}\.npz")
_FEATURES_RE = re.compile(r"features_[0-9a-f]{16}\.npy")
_FEATURE_FIELDS = {"file": str, "key": str, "rows": int, "bytes": int, "sha256": str,
                   "bars_sha256": (str, type(None)), "settings": dict}
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: same adds -> same bytes
_ENTRY_FIELDS = {
    "file": str, "steps": int, "bytes": int, "sha256": str, "profit": float,
    "final_equity": float, "score": float, "policy": str, "seed": (int, type(None)),
    "period": str,
}


@dataclass(frozen=True)
class AddResult:
    """Outcome of :meth:`TrajectoryStore.add`: kept or not, why, and what it replaced."""

    kept: bool
    reason: str
    file: str | None = None
    replaced: str | None = None


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An ``.npz`` (zip of ``.npy`` members, as np.savez_compressed) with fixed timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def trajectory_npz(traj: Trajectory, version: int = 1) -> bytes:
    """A record file: version 1 all four arrays; version 2 ``bars`` (int32 bar indices into the
    store's feature matrix) instead of ``states``."""
    if version == 1:
        arrays = {name: getattr(traj, name) for name in ARRAY_SPECS}
    else:
        arrays = {"bars": traj.states.bars.astype(np.int32)}
        arrays.update({name: getattr(traj, name) for name in ARRAY_SPECS if name != "states"})
    arrays["meta"] = np.array(json.dumps(traj.metadata(), sort_keys=True, allow_nan=False))
    return npz_bytes(arrays)


def features_npy(matrix: FeatureMatrix) -> bytes:
    """The store's feature matrix file: a plain ``.npy`` (newest bar first) a reader maps."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(matrix.newest_first),
                              allow_pickle=False)
    return buf.getvalue()


class TrajectoryStore:
    """A versioned, pickle-free trajectory buffer on disk (one writer at a time).

    Open with :meth:`open`. ``len(store)`` trajectories are listed in ``store.entries`` (dicts
    with file, steps, profit, final_equity, score, policy, seed, period, sha256, bytes).
    """

    def __init__(self, path: Path, manifest: dict):
        self.path = path
        self.capacity: int = manifest["capacity"]
        self._next_id: int = manifest["next_id"]
        self.entries: list[dict] = manifest["trajectories"]
        # keys of the passes already decided here, kept or discarded (research skips them)
        self.decided: list[str] = list(manifest.get("decided", []))
        # a store without trajectories takes the version of its first record (None until then)
        self.version: int | None = manifest.get("version") if self.entries else None
        self.features: dict | None = manifest.get("features") if self.version == 2 else None
        self._matrix: FeatureMatrix | None = None

    # ---- opening and validation -------------------------------------------------------------
    @classmethod
    def open(cls, path, *, create: bool = False, capacity: int = DEFAULT_CAPACITY):
        """Open the store at ``path``; with ``create`` make an empty one if there is none.

        ``capacity`` applies to a new store; an existing store keeps its own.
        """
        path = Path(path)
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise NeurofxError(f"{path}: capacity must be a positive integer, got {capacity!r}")
        mpath = path / MANIFEST
        if mpath.is_file():
            store = cls(path, cls._read_manifest(mpath))
            for e in store.entries + ([store.features] if store.features else []):
                fpath = path / e["file"]
                if not fpath.is_file():
                    raise NeurofxError(f"{fpath}: listed in {mpath} but missing; restore it")
                if fpath.stat().st_size != e["bytes"]:
                    raise NeurofxError(
                        f"{fpath}: field 'bytes' is {fpath.stat().st_size} on disk, "
                        f"{e['bytes']} in {MANIFEST}; the file was changed or truncated"
                    )
            return store
        if path.exists() and not path.is_dir():
            raise NeurofxError(f"{path}: is a file, not a trajectory store directory")
        if path.is_dir():
            foreign = [p.name for p in path.iterdir() if not cls._is_ours(p.name)]
            if foreign:
                raise NeurofxError(
                    f"{path}: not a neurofx trajectory store (no {MANIFEST}, holds "
                    f"'{sorted(foreign)[0]}'); choose an empty or new directory"
                )
        elif not create:
            raise NeurofxError(f"{path}: no trajectory store here; run 'neurofx research' first")
        # a directory holding only our own leftovers is an empty store that was never committed
        empty = {"capacity": capacity, "next_id": 1, "trajectories": []}
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return cls(path, empty)

    @staticmethod
    def _is_ours(name: str) -> bool:
        return (is_temp_name(name) or name == LOCK_NAME or bool(_FILE_RE.fullmatch(name))
                or bool(_FEATURES_RE.fullmatch(name)))

    @staticmethod
    def _read_manifest(mpath: Path) -> dict:
        try:
            data = json.loads(mpath.read_bytes())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise NeurofxError(f"{mpath}: not a neurofx trajectory manifest ({err})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise NeurofxError(
                f"{mpath}: field 'format' is not '{FORMAT_NAME}'; not a neurofx trajectory store"
            )
        if data.get("version") not in VERSIONS or isinstance(data.get("version"), bool):
            raise NeurofxError(
                f"{mpath}: field 'version' is {data.get('version')!r}, this neurofx reads "
                f"versions {', '.join(map(str, VERSIONS))}; use the neurofx that wrote it or "
                f"collect again"
            )
        for key in ("capacity", "next_id"):
            v = data.get(key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise NeurofxError(f"{mpath}: field '{key}' must be a positive integer, got {v!r}")
        decided = data.get("decided", [])
        if not isinstance(decided, list) or not all(isinstance(k, str) for k in decided):
            raise NeurofxError(f"{mpath}: field 'decided' must be a list of pass keys")
        entries = data.get("trajectories")
        if not isinstance(entries, list):
            raise NeurofxError(f"{mpath}: field 'trajectories' must be a list")
        if len(entries) > data["capacity"]:
            raise NeurofxError(f"{mpath}: field 'trajectories' holds more than 'capacity' entries")
        seen = set()
        for i, e in enumerate(entries):
            where = f"{mpath}: trajectories[{i}]"
            if not isinstance(e, dict):
                raise NeurofxError(f"{where} must be an object")
            for key, typ in _ENTRY_FIELDS.items():
                v = e.get(key)
                if typ is float:
                    ok = isinstance(v, (int, float)) and math.isfinite(v)
                else:
                    ok = isinstance(v, typ)
                ok = ok and not isinstance(v, bool)
                if not ok:
                    raise NeurofxError(f"{where}: field '{key}' is missing or has a wrong type")
            if not _FILE_RE.fullmatch(e["file"]) or e["file"] in seen:
                raise NeurofxError(f"{where}: field 'file' {e['file']!r} is not a valid file name")
            seen.add(e["file"])
        feats = data.get("features")
        if data["version"] == 2 and entries:
            ok = isinstance(feats, dict) and all(
                isinstance(feats.get(k), t) and not isinstance(feats.get(k), bool)
                for k, t in _FEATURE_FIELDS.items())
            if not ok or not _FEATURES_RE.fullmatch(feats["file"]) \
                    or feats["file"] != f"features_{feats['key']}.npy":
                raise NeurofxError(f"{mpath}: field 'features' is missing or invalid (file, key, "
                                   f"rows, bytes, sha256, bars_sha256, settings)")
        return data

    def __len__(self) -> int:
        return len(self.entries)

    # ---- reading ------------------------------------------------------------------------------
    def _checked_bytes(self, entry: dict) -> bytes:
        fpath = self.path / entry["file"]
        data = fpath.read_bytes()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise NeurofxError(
                f"{fpath}: field 'sha256' does not match {MANIFEST}; the file is corrupt"
            )
        return data

    def matrix(self) -> FeatureMatrix | None:
        """The store's feature matrix (version 2; None otherwise), checked once and mapped
        read-only from ``features_<key>.npy``; every trajectory shares it."""
        if self.features is None:
            return None
        if self._matrix is None:
            f = self.features
            fpath = self.path / f["file"]
            self._checked_bytes(f)
            try:
                values = np.load(fpath, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError) as err:
                raise NeurofxError(f"{fpath}: not a readable feature matrix ({err})") from None
            if values.dtype != np.float32 or values.shape != (f["rows"], BAR_FEATURES):
                raise NeurofxError(f"{fpath}: field 'rows' or dtype: holds {values.dtype} "
                                   f"{values.shape}, expected float32 ({f['rows']}, "
                                   f"{BAR_FEATURES}); the file is not this store's")
            self._matrix = FeatureMatrix(values, f["bars_sha256"], f["settings"])
            if self._matrix.key != f["key"]:
                raise NeurofxError(f"{self.path / MANIFEST}: field 'features' key {f['key']} "
                                   f"does not match its bars and settings; the manifest was "
                                   f"edited")
        return self._matrix

    def arrays(self, index: int, fields=tuple(ARRAY_SPECS)) -> dict[str, np.ndarray]:
        """Read and check some arrays of trajectory ``index`` (sha256 of the whole file first).
        In a version-2 store ``states`` are :class:`StateWindows` of the feature matrix."""
        e = self.entries[index]
        fpath = self.path / e["file"]
        data = self._checked_bytes(e)
        v2 = self.version == 2
        want = [n for n in fields if not (v2 and n == "states")] + (
            ["bars"] if v2 and "states" in fields else [])
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                out = {name: npz[name] for name in want if name in npz.files}
                meta = npz["meta"] if "meta" in npz.files else None
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
            raise NeurofxError(f"{fpath}: not a readable trajectory file ({err})") from None
        if "bars" in want:
            bars = out.pop("bars", None)
            if bars is None:
                raise NeurofxError(f"{fpath}: field 'bars' is missing; the file is not a "
                                   f"version-2 trajectory")
            if bars.dtype != np.int32 or bars.ndim != 1:
                raise NeurofxError(f"{fpath}: field 'bars' has dtype {bars.dtype} shape "
                                   f"{bars.shape}, expected int32 (steps,)")
            try:
                out["states"] = self.matrix().windows(bars)
            except NeurofxError as err:
                raise NeurofxError(f"{fpath}: field 'bars': {err}") from None
        steps = check_arrays(out, str(fpath), tuple(fields))
        if steps != e["steps"]:
            raise NeurofxError(f"{fpath}: field 'steps' is {steps}, {MANIFEST} says {e['steps']}")
        try:
            if meta is None or meta.shape != () or meta.dtype.kind != "U":
                raise ValueError("not a 0-d text array")
            out["meta"] = json.loads(meta.item())
            if not isinstance(out["meta"], dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            raise NeurofxError(f"{fpath}: field 'meta' is missing or invalid ({err})") from None
        return out

    def load(self, index: int) -> Trajectory:
        """The full trajectory ``index`` (validated)."""
        a = self.arrays(index)
        meta = a.pop("meta")
        return Trajectory(
            **a,
            profit=meta["profit"], policy=meta["policy"], seed=meta["seed"],
            period=meta["period"], final_equity=meta["final_equity"],
            discounted=meta["discounted"], gamma=meta["gamma"], extra=meta["extra"],
        )

    def __iter__(self):
        return (self.load(i) for i in range(len(self)))

    def verify(self) -> None:
        """Read and check every file; raises on the first problem."""
        self.matrix()
        for i in range(len(self)):
            self.arrays(i)

    def scores(self) -> np.ndarray:
        """Sampling scores (spec 5.1) of all trajectories, from the manifest."""
        return np.array([e["score"] for e in self.entries], dtype=np.float64)

    # ---- writing ------------------------------------------------------------------------------
    def add(self, traj: Trajectory, min_profit: float = DEFAULT_MIN_PROFIT,
            key: str | None = None) -> AddResult:
        """Apply the seed's buffer rules to one pass and commit it if kept.

        Kept if ``profit >= min_profit`` and ``profit != 0``. A full store replaces its
        trajectory with the lowest final equity when the new final equity is >= that minimum.
        Rewards are discounted here if the pass has not been discounted yet. With ``key`` (the
        pass's identity, e.g. policy, seed and period) the decision is recorded in
        :attr:`decided` either way, so a rerun of the same research can skip the pass.
        """
        if not isinstance(traj, Trajectory):
            raise TypeError(f"add() takes a Trajectory, got {type(traj).__name__}")
        if self.version == 2:
            if not isinstance(traj.states, StateWindows):
                raise NeurofxError(
                    f"{self.path}: a version-2 store keeps windows of one feature matrix; this "
                    f"record carries raw states (imported or hand-made): add it to a "
                    f"version-1 store (a new store whose first record has raw states)")
            self.check_matrix(traj.states.matrix)
        why = self._discard_reason(traj, min_profit)
        if why is not None:
            if key is not None:
                self._commit(list(self.entries), [*self.decided, key])
            return AddResult(False, why)
        return self._keep(traj, key)

    def _discard_reason(self, traj: Trajectory, min_profit: float) -> str | None:
        if traj.profit == 0:
            return "profit is 0 (the seed discards passes without trades)"
        if traj.profit < min_profit:
            return f"profit {traj.profit:.2f} < min_profit {min_profit:.2f}"
        if len(self.entries) >= self.capacity:
            lowest = min(e["final_equity"] for e in self.entries)
            if traj.final_equity < lowest:
                return (f"buffer full ({self.capacity}) and final equity "
                        f"{traj.final_equity:.2f} < lowest kept {lowest:.2f}")
        return None

    def check_matrix(self, matrix: FeatureMatrix) -> None:
        """One line if this store holds passes made on other bars or feature settings than
        ``matrix`` (version 2; a store without a matrix yet takes any)."""
        f = self.features
        if f is None or matrix.key == f["key"]:
            return
        if matrix.bars_sha256 != f["bars_sha256"]:
            what = (f"other bars (bars sha256 {str(matrix.bars_sha256)[:12]}, the store's "
                    f"{str(f['bars_sha256'])[:12]})")
        else:
            diff = [f"{k} {matrix.settings.get(k)!r} (store: {f['settings'].get(k)!r})"
                    for k in sorted(set(matrix.settings) | set(f["settings"]))
                    if matrix.settings.get(k) != f["settings"].get(k)]
            what = "other feature settings: " + ", ".join(diff)
        raise NeurofxError(
            f"{self.path}: field 'features' key {f['key']}: this pass was made on {what}; a "
            f"store holds passes of one bar file and feature settings (fix: another --store, "
            f"or the store's data.file and data.tick_volume)")

    def _keep(self, traj: Trajectory, key: str | None) -> AddResult:
        slot = len(self.entries)
        if slot >= self.capacity:
            slot = int(np.argmin([e["final_equity"] for e in self.entries]))
        if not traj.discounted:
            traj = traj.discount()
        self.path.mkdir(parents=True, exist_ok=True)
        self._clean_orphans()
        version = self.version
        if version is None:  # the first record decides
            version = 2 if isinstance(traj.states, StateWindows) else 1
        features = self.features
        if version == 2 and features is None:
            features = self._write_matrix(traj.states.matrix)
        data = trajectory_npz(traj, version)
        name = f"traj_{self._next_id:06d}.npz"
        entry = {
            "bytes": len(data),
            "file": name,
            "final_equity": traj.final_equity,
            "period": str(traj.period),
            "policy": traj.policy,
            "profit": traj.profit,
            "score": traj.score,
            "seed": traj.seed,
            "sha256": hashlib.sha256(data).hexdigest(),
            "steps": traj.steps,
        }
        entries = list(self.entries)
        replaced = entries[slot]["file"] if slot < len(entries) else None
        if replaced is None:
            entries.append(entry)
        else:
            entries[slot] = entry
        write_bytes_atomic(self.path / name, data)
        self._next_id += 1
        self.version, self.features = version, features
        self._commit(entries, self.decided if key is None else [*self.decided, key])
        if replaced is not None:
            (self.path / replaced).unlink(missing_ok=True)
            reason = f"kept, replaced {replaced} (lowest final equity)"
        else:
            reason = "kept"
        return AddResult(True, reason, file=name, replaced=replaced)

    def _write_matrix(self, matrix: FeatureMatrix) -> dict:
        """Write the feature matrix file (not yet committed) and return its manifest record."""
        data = features_npy(matrix)
        name = f"features_{matrix.key}.npy"
        write_bytes_atomic(self.path / name, data)
        self._matrix = None
        return {"bars_sha256": matrix.bars_sha256, "bytes": len(data), "file": name,
                "key": matrix.key, "rows": matrix.rows, "settings": matrix.settings,
                "sha256": hashlib.sha256(data).hexdigest()}

    def _commit(self, entries: list[dict], decided: list[str]) -> None:
        """Write the manifest (the commit point) and take its state."""
        version = self.version or FORMAT_VERSION
        manifest = {
            "capacity": self.capacity,
            "format": FORMAT_NAME,
            "next_id": self._next_id,
            "trajectories": entries,
            "version": version,
        }
        if version == 2 and self.features is not None:
            manifest["features"] = self.features
        if decided:
            manifest["decided"] = decided
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path / MANIFEST, manifest, indent=1)
        fsync_dir(self.path)
        self.entries, self.decided = entries, decided

    def _clean_orphans(self) -> None:
        listed = {e["file"] for e in self.entries}
        if self.features is not None:
            listed.add(self.features["file"])
        for p in self.path.iterdir():
            if self._is_ours(p.name) and p.name not in listed | {LOCK_NAME} and p.is_file():
                p.unlink(missing_ok=True)

    # ---- summary ------------------------------------------------------------------------------
    def info(self) -> StoreInfo:
        """Counts, steps, profit distribution and action statistics (reads actions/accounts)."""
        n = len(self.entries)
        profits = np.array([e["profit"] for e in self.entries], dtype=np.float64)
        equities = np.array([e["final_equity"] for e in self.entries], dtype=np.float64)
        policies: dict[str, int] = {}
        for e in self.entries:
            policies[e["policy"]] = policies.get(e["policy"], 0) + 1
        s1 = np.zeros(6)
        s2 = np.zeros(6)
        held = 0
        steps = 0
        for i in range(n):
            a = self.arrays(i, ("actions", "accounts"))
            act = a["actions"].astype(np.float64)
            s1 += act.sum(axis=0)
            s2 += (act * act).sum(axis=0)
            held += int(np.count_nonzero((a["accounts"][:, 2] > 0) | (a["accounts"][:, 3] > 0)))
            steps += act.shape[0]
        mean = s1 / steps if steps else np.full(6, np.nan)
        std = np.sqrt(np.maximum(s2 / steps - mean**2, 0.0)) if steps else np.full(6, np.nan)

        def q(values, fn):
            return float(fn(values)) if n else float("nan")

        return StoreInfo(
            path=str(self.path), format_version=self.version or FORMAT_VERSION, trajectories=n,
            capacity=self.capacity, total_steps=steps,
            profit_min=q(profits, np.min), profit_median=q(profits, np.median),
            profit_max=q(profits, np.max), final_equity_min=q(equities, np.min),
            final_equity_max=q(equities, np.max), policies=dict(sorted(policies.items())),
            action_mean=tuple(float(x) for x in mean), action_std=tuple(float(x) for x in std),
            position_share=held / steps if steps else float("nan"),
        )


ACTION_NAMES = ("buy_lots", "buy_tp", "buy_sl", "sell_lots", "sell_tp", "sell_sl")


@dataclass(frozen=True)
class StoreInfo:
    """Summary of a store. ``position_share``: share of steps whose account record shows open
    buy or sell lots at the bar's open. ``action_std`` is the population std over all steps."""

    path: str
    format_version: int
    trajectories: int
    capacity: int
    total_steps: int
    profit_min: float
    profit_median: float
    profit_max: float
    final_equity_min: float
    final_equity_max: float
    policies: dict
    action_mean: tuple
    action_std: tuple
    position_share: float

    def to_text(self) -> str:
        lines = [
            f"store        {self.path} ({FORMAT_NAME} v{self.format_version})",
            f"trajectories {self.trajectories} of {self.capacity}, {self.total_steps} steps",
        ]
        if self.trajectories:
            pol = ", ".join(f"{k} {v}" for k, v in self.policies.items())
            lines += [
                f"profit       min {self.profit_min:.2f}  median {self.profit_median:.2f}  "
                f"max {self.profit_max:.2f}",
                f"final equity min {self.final_equity_min:.2f}  max {self.final_equity_max:.2f}",
                f"policies     {pol}",
                f"open position on {100 * self.position_share:.1f}% of steps",
                "action       " + "  ".join(f"{n:>9}" for n in ACTION_NAMES),
                "  mean       " + "  ".join(f"{v:9.4f}" for v in self.action_mean),
                "  std        " + "  ".join(f"{v:9.4f}" for v in self.action_std),
            ]
        return "\n".join(lines)

    __str__ = to_text


@dataclass(frozen=True)
class MigrateResult:
    """What :func:`migrate_to_v2` did: trajectories rewritten, bytes before and after."""

    path: str
    trajectories: int
    bytes_before: int
    bytes_after: int
    already: bool = False

    def to_text(self) -> str:
        if self.already:
            return f"store {self.path} is version 2 already; nothing to do"
        return (f"store {self.path}: {self.trajectories} trajectories migrated to version 2, "
                f"{self.bytes_before / 2**20:.1f} MiB -> {self.bytes_after / 2**20:.1f} MiB")


def migrate_to_v2(store: TrajectoryStore, matrix: FeatureMatrix, time_s) -> MigrateResult:
    """Rewrite a version-1 store as version 2 over ``matrix`` (features of the bars with open
    times ``time_s``, Unix s), in place and crash-safe (new files, then the manifest, then the
    old files go). Each step's bar is found by its account record's bar time, and its stored
    state must equal that bar's window exactly, else one line names the file and step (the
    passes were made on other bars or settings). Slot order, metadata and decided passes stay.
    """
    if store.version == 2:
        return MigrateResult(str(store.path), len(store), 0, 0, already=True)
    time_s = np.asarray(time_s, dtype=np.int64)
    if time_s.shape != (matrix.rows,):
        raise ValueError("time_s must hold one bar time per row of the matrix")
    store._clean_orphans()
    before = sum(e["bytes"] for e in store.entries)
    entries = []
    next_id = store._next_id
    for i, e in enumerate(store.entries):
        fpath = store.path / e["file"]
        traj = store.load(i)
        times = traj.accounts[:, 7].astype(np.int64)
        idx = np.minimum(np.searchsorted(time_s, times), len(time_s) - 1)
        miss = np.flatnonzero(time_s[idx] != times)
        if miss.size:
            k = int(miss[0])
            raise NeurofxError(
                f"{fpath}: field 'accounts' step {k}: bar time {int(times[k])} is not in the "
                f"bar file; migrate with the bars the passes were made on (data.file)")
        try:
            windows = matrix.windows(idx)
        except NeurofxError as err:
            raise NeurofxError(f"{fpath}: field 'states': {err}") from None
        same = (np.asarray(windows) == traj.states).all(axis=1)
        if not same.all():
            k = int(np.flatnonzero(~same)[0])
            raise NeurofxError(
                f"{fpath}: field 'states' step {k} differs from the window of its bar in this "
                f"bar file with these feature settings; migrate with the bars and settings the "
                f"passes were made on (data.file, data.tick_volume)")
        new = Trajectory(states=windows, accounts=traj.accounts, actions=traj.actions,
                         rewards=traj.rewards, profit=traj.profit, policy=traj.policy,
                         seed=traj.seed, period=traj.period, final_equity=traj.final_equity,
                         discounted=traj.discounted, gamma=traj.gamma, extra=traj.extra)
        data = trajectory_npz(new, 2)
        name = f"traj_{next_id:06d}.npz"
        write_bytes_atomic(store.path / name, data)
        next_id += 1
        entries.append({**e, "bytes": len(data), "file": name,
                        "sha256": hashlib.sha256(data).hexdigest()})
    old = [e["file"] for e in store.entries]
    features = store._write_matrix(matrix) if entries else None
    store._next_id = next_id
    store.version, store.features = (2, features) if entries else (None, None)
    store._commit(entries, store.decided)
    for name in old:
        (store.path / name).unlink(missing_ok=True)
    after = sum(e["bytes"] for e in entries) + (features["bytes"] if features else 0)
    return MigrateResult(str(store.path), len(entries), before, after)
