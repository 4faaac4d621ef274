"""A Lightning callback that saves ``last.ckpt`` every N minutes of training, at its end
and when it is stopped (Ctrl-C, SIGTERM: Lightning calls ``on_exception``).

Lightning 2.6's ``ModelCheckpoint(train_time_interval=...)`` never fires under manual
optimization (its manual-optimization branch only looks at ``every_n_train_steps``), and
both the render GAN and SING optimise manually, so their long runs had nothing to resume
from until they ended. This callback checks the clock after every training batch.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback


class TimedCheckpoint(Callback):
    """Write `path` (a Lightning checkpoint: weights, optimisers, loop state) every `minutes`
    of training, at the end of training and when training fails; each write goes to a
    temporary file renamed over `path`, so a kill mid-write leaves the previous one.

    With `keep`, every write also stays as ``step-NNNNNNN.ckpt`` beside `path` (a hard link
    where the file system allows, else a copy), so a long run's snapshots can be compared
    afterwards; NNNNNNN counts batches (Lightning's global step over `steps_per_batch`, the
    optimiser steps of one batch: 2 for a GAN), as the run's summary does."""

    def __init__(self, path: str | Path, minutes: float, keep: bool = False, steps_per_batch: int = 1) -> None:
        super().__init__()
        if not minutes > 0:
            raise ValueError(f"checkpoint period must be positive, got {minutes!r} minutes")
        self.path = Path(path)
        self.seconds = float(minutes) * 60.0
        self.saves = 0
        self.keep = keep
        self.steps_per_batch = max(1, int(steps_per_batch))
        self._last_time = time.monotonic()
        self._saved_step = -1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_time = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        due = time.monotonic() - self._last_time >= self.seconds
        if trainer.strategy.broadcast(due):  # every rank decides alike (DDP saves collectively)
            self.save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.save(trainer)

    def save(self, trainer: L.Trainer) -> None:
        """Write the checkpoint now (skipped when this step is already saved)."""
        self._last_time = time.monotonic()
        if trainer.global_step == self._saved_step:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.part")
        trainer.save_checkpoint(partial)  # the whole state (optimisers too): resuming needs it
        if trainer.is_global_zero:
            os.replace(partial, self.path)
            if self.keep:
                self._keep_copy(trainer.global_step // self.steps_per_batch)
        self._saved_step = trainer.global_step
        self.saves += 1

    def _keep_copy(self, step: int) -> None:
        kept = self.path.with_name(f"step-{step:07d}.ckpt")
        if kept.exists():
            kept.unlink()
        try:
            os.link(self.path, kept)  # last.ckpt is replaced by a new file next time, not rewritten
        except OSError:
            shutil.copyfile(self.path, kept)
