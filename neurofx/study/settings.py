"""The settings of one study run (recorded in ``study_<stage>_config.json`` and its checkpoints)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from neurofx.errors import NeurofxError


@dataclass(frozen=True)
class Settings:
    """Everything a study run depends on. ``model_args``: role -> {override: value} (the
    autoencoder stage reads its sizes from role ``autoencoder``)."""

    stage: str
    store: str
    run: str
    runs_root: str = "runs"
    out: str = ""  # output folder; empty: <runs_root>/<run>
    iterations: int = 200
    batch: int = 16
    seq_len: int = 100
    optimizer: str = "adam"
    lr: float = 3e-4
    opt_args: dict = field(default_factory=dict)
    val_share: float = 0.2
    val_every: int = 10
    val_batches: int = 2
    checkpoint_every: int = 50
    early_stop: int = 0
    seed: int = 0
    model: str = "auto"  # agents.resolve: "auto" = each role's default model
    model_args: dict = field(default_factory=dict)  # role -> {override: value}
    resume: bool = False
    fresh: bool = False
    progress: bool = True

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path(self.runs_root) / self.run

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_root) / self.run

    def check(self) -> None:
        for name in ("iterations", "batch", "seq_len", "val_every", "val_batches"):
            if getattr(self, name) < 1:
                raise NeurofxError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be "
                                   ">= 1")
        for name in ("checkpoint_every", "early_stop"):
            if getattr(self, name) < 0:
                raise NeurofxError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be "
                                   ">= 0 (0 = off)")
        if self.resume and self.fresh:
            raise NeurofxError("--resume and --fresh exclude each other; pick one")

    def record(self) -> dict:
        d = asdict(self)
        d.pop("progress")
        return d
