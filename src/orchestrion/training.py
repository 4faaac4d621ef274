"""What every system's training shares: one Lightning Trainer setup, and its quiet.

`build_trainer` gives both `train render` and `train note` the same Trainer: timed
checkpoints (also written at the end and when a signal stops the run), a limit on the
minutes of this invocation, and a progress bar that counts the run's own steps.
`quiet_lightning` hides Lightning's advertising tips and notices that are not for our
users; `interruption_reported` turns a run stopped by Ctrl-C or SIGTERM into one line
that says where its checkpoint is.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, RichProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.strategies import DDPStrategy, Strategy

from orchestrion.errors import OrchestrionError
from orchestrion.timed_checkpoint import TimedCheckpoint

DEFAULT_CHECKPOINT_MINUTES = 5.0
"""Minutes between checkpoints unless told otherwise (a run also saves at its end and when stopped)."""

_HIDDEN_LINES = ("💡 Tip:", "`weights_only` was not set", "`Trainer.fit` stopped:")
"""Lightning's log lines that tell our users nothing (the tips advertise its cloud services;
the stop line counts optimiser steps, two per batch for a GAN)."""

_HIDDEN_WARNINGS = (
    ".*does not have many workers.*", ".*GPU available but not used.*",
    ".*smaller than the logging interval.*", ".*Checkpoint directory .* exists and is not empty.*",
    ".*resuming from a checkpoint that ended before the epoch ended.*",
    ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*", ".*weights_only.*",
    ".*Using `DistributedSampler` with the dataloaders.*", ".*sync_dist=True.*",
)
"""Lightning's advice that does not apply to our runs (2 CPU cores, our own checkpoints)."""


class TrainingInterrupted(OrchestrionError):
    """A training run was stopped by a signal (Ctrl-C, SIGTERM) before its end."""


class InvocationTimeLimit(Callback):
    """Stop training after `minutes` of this invocation: time spent before a ``--resume``
    does not count (Lightning's own ``max_time`` restores it from the checkpoint)."""

    def __init__(self, minutes: float) -> None:
        super().__init__()
        self.seconds = float(minutes) * 60.0
        self._started = time.monotonic()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        over = time.monotonic() - self._started >= self.seconds
        if trainer.strategy.broadcast(over):  # every rank stops at the same batch
            trainer.should_stop = True


class StepProgressBar(RichProgressBar):
    """Lightning's rich progress bar, described as ``step 30/300`` in the run's own steps
    (batches; Lightning counts optimiser steps) instead of ``Epoch 0/-2``."""

    def __init__(self, steps_per_batch: int, max_steps: int | None) -> None:
        super().__init__()
        self.steps_per_batch = steps_per_batch
        self.max_steps = max_steps

    def _get_train_description(self, current_epoch: int) -> str:
        if self.max_steps is not None:
            text = f"step {self.trainer.global_step // self.steps_per_batch}/{self.max_steps}"
        elif self.trainer.max_epochs is not None and self.trainer.max_epochs > 0:
            text = f"epoch {current_epoch + 1}/{self.trainer.max_epochs}"
        else:
            text = f"epoch {current_epoch + 1}"
        return f"{text:{len(self.validation_description)}}"

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.progress is not None and self.train_progress_bar_id is not None:  # the step moves on
            self.progress.update(self.train_progress_bar_id,
                                 description=self._get_train_description(trainer.current_epoch))


def build_trainer(
    *,
    root_dir: Path,
    checkpoint: Path,
    steps_per_batch: int,
    max_steps: int | None,
    max_minutes: float | None,
    devices: int,
    strategy: str,
    progress: bool,
    num_nodes: int = 1,
    checkpoint_minutes: float = DEFAULT_CHECKPOINT_MINUTES,
    keep_checkpoints: bool = False,
    max_epochs: int | None = None,
    callbacks: Sequence[Callback] = (),
    **options: Any,
) -> L.Trainer:
    """The Lightning Trainer of a training run.

    Parameters
    ----------
    root_dir : the run's (or stage's) folder: CSV logs go to ``root_dir/logs``.
    checkpoint : ``last.ckpt`` of the run, written every `checkpoint_minutes`, at the end
        and when a signal stops training (`TimedCheckpoint`).
    steps_per_batch : optimiser steps per batch (2 for a GAN): Lightning's ``global_step``
        counts those, while `max_steps`, the progress bar and kept checkpoints count batches.
    max_steps, max_epochs : limits in batches and epochs (None: none).
    max_minutes : stop after this many minutes of this invocation (None: no limit).
    devices, strategy, num_nodes : Lightning's (e.g. 2, ``"ddp"`` (see `_strategy`) and 1):
        processes per machine, how they share the work, and machines.
    progress : show the progress bar.
    keep_checkpoints : also keep every timed checkpoint as ``step-NNNNNNN.ckpt`` (batches).
    callbacks : the system's own callbacks, after ours.
    options : other Trainer arguments (validation interval, logging period, summary).
    """
    run_callbacks: list[Callback] = [
        TimedCheckpoint(checkpoint, checkpoint_minutes, keep=keep_checkpoints, steps_per_batch=steps_per_batch),
        *callbacks,
    ]
    if max_minutes is not None:
        run_callbacks.append(InvocationTimeLimit(max_minutes))
    if progress:
        run_callbacks.append(StepProgressBar(steps_per_batch, max_steps))
    return L.Trainer(
        accelerator="auto", devices=devices, num_nodes=num_nodes, strategy=_strategy(strategy),
        max_epochs=-1 if max_epochs is None else max_epochs,
        max_steps=-1 if max_steps is None else max_steps * steps_per_batch,
        callbacks=run_callbacks, default_root_dir=root_dir, logger=CSVLogger(root_dir, name="logs"),
        enable_progress_bar=progress, check_val_every_n_epoch=None, num_sanity_val_steps=0,
        enable_checkpointing=False,  # ours are the only checkpoints (Lightning's went into logs/)
        **options,
    )


def _strategy(name: str) -> str | Strategy:
    """Lightning's strategy called `name`; plain ``ddp`` looks for unused parameters, as both
    systems need (a GAN's generator loss leaves the discriminator out, a SING stage the
    parts it does not train)."""
    return DDPStrategy(find_unused_parameters=True) if name == "ddp" else name


class _HideLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).lstrip().startswith(_HIDDEN_LINES)


@contextlib.contextmanager
def quiet_lightning(info: bool = True) -> Iterator[None]:
    """Hide Lightning's tips and notices meant for its developers; with ``info=False`` also
    its info lines (devices, model summary). Put around building the Trainer and fitting."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    hide = _HideLines()
    handlers = [handler for logger in loggers for handler in logger.handlers]
    for handler in handlers:
        handler.addFilter(hide)
    for logger in loggers:
        logger.addFilter(hide)
        if not info:
            logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in _HIDDEN_WARNINGS:
                warnings.filterwarnings("ignore", pattern)
            yield
    finally:
        for handler in handlers:
            handler.removeFilter(hide)
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeFilter(hide)
            logger.setLevel(level)


@contextlib.contextmanager
def interruption_reported(checkpoint: Path) -> Iterator[None]:
    """Turn a run stopped by Ctrl-C or SIGTERM (Lightning saves through `TimedCheckpoint`
    and exits) into a TrainingInterrupted naming the checkpoint to resume from."""
    try:
        yield
    except SystemExit as exc:  # Lightning's SIGTERMException, and its exit after Ctrl-C
        saved = (f"{checkpoint} holds the run so far: continue with --resume" if checkpoint.is_file()
                 else "nothing was saved yet")
        raise TrainingInterrupted(f"training stopped by a signal before its end; {saved}") from exc


__all__ = [
    "DEFAULT_CHECKPOINT_MINUTES",
    "InvocationTimeLimit",
    "StepProgressBar",
    "TrainingInterrupted",
    "build_trainer",
    "interruption_reported",
    "quiet_lightning",
]
