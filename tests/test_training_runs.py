"""The Trainer both systems share: checkpoints named in batches, stops that save, a limit on
this invocation's minutes, a progress bar in steps, and none of Lightning's tips."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from orchestrion.training import StepProgressBar, build_trainer, interruption_reported, quiet_lightning


class TwoOptimisers(L.LightningModule):
    """A toy GAN-like module: two optimisers step every batch (Lightning counts 2 steps)."""

    def __init__(self, pause_s: float = 0.0) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.first = torch.nn.Linear(4, 1)
        self.second = torch.nn.Linear(4, 1)
        self.pause_s = pause_s

    def training_step(self, batch, batch_idx):
        (x,) = batch
        for optimiser, layer in zip(self.optimizers(), (self.first, self.second), strict=True):
            loss = layer(x).pow(2).mean()
            optimiser.zero_grad()
            self.manual_backward(loss)
            optimiser.step()
        time.sleep(self.pause_s)

    def configure_optimizers(self):
        return [torch.optim.SGD(self.first.parameters(), lr=0.01), torch.optim.SGD(self.second.parameters(), lr=0.01)]


def loader() -> DataLoader:
    return DataLoader(TensorDataset(torch.randn(64, 4)), batch_size=4)


def fit(run: Path, resume: bool = False, **options) -> L.Trainer:
    last = run / "checkpoints" / "last.ckpt"
    with quiet_lightning(info=False):
        trainer = build_trainer(root_dir=run, checkpoint=last, steps_per_batch=2, devices=1, strategy="auto",
                                progress=False, **{"max_steps": None, "max_minutes": None, **options})
        trainer.fit(options.pop("module", None) or TwoOptimisers(), loader(),
                    ckpt_path=str(last) if resume else None)
    return trainer


def test_kept_checkpoints_are_named_by_batches_as_the_summary_counts(tmp_path):
    trainer = fit(tmp_path, max_steps=5, keep_checkpoints=True)
    assert trainer.global_step == 10  # Lightning counts both optimisers
    assert [p.name for p in (tmp_path / "checkpoints").glob("step-*.ckpt")] == ["step-0000005.ckpt"]


def test_max_minutes_after_a_resume_counts_only_this_invocation(tmp_path):
    limit_min = 0.02  # 1.2 s at 0.1 s a batch
    with quiet_lightning(info=False):
        first = build_trainer(root_dir=tmp_path, checkpoint=tmp_path / "checkpoints" / "last.ckpt",
                              steps_per_batch=2, max_steps=None, max_minutes=limit_min, devices=1,
                              strategy="auto", progress=False)
        first.fit(TwoOptimisers(pause_s=0.1), loader())
        before = first.global_step // 2
        second = build_trainer(root_dir=tmp_path, checkpoint=tmp_path / "checkpoints" / "last.ckpt",
                               steps_per_batch=2, max_steps=None, max_minutes=limit_min, devices=1,
                               strategy="auto", progress=False)
        second.fit(TwoOptimisers(pause_s=0.1), loader(), ckpt_path=str(tmp_path / "checkpoints" / "last.ckpt"))
    assert 3 <= before < 100
    assert second.global_step // 2 - before >= 3, (before, second.global_step // 2)


def test_lightning_tips_and_notices_are_not_printed(tmp_path, capfd):
    fit(tmp_path, max_steps=2)
    printed = "".join(capfd.readouterr())
    for needle in ("Tip", "litlogger", "litmodels", "weights_only", "Trainer.fit` stopped"):
        assert needle not in printed, printed


@pytest.mark.parametrize(("max_steps", "max_epochs", "expected"), [
    (300, None, "step 30/300"), (None, 12, "epoch 4/12"), (None, -1, "epoch 4")])
def test_progress_bar_counts_the_runs_own_steps(max_steps, max_epochs, expected):
    bar = StepProgressBar(steps_per_batch=2, max_steps=max_steps)
    bar._trainer = SimpleNamespace(global_step=60, max_epochs=max_epochs)
    assert bar._get_train_description(current_epoch=3).strip() == expected


STOPPED_RUN = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import lightning as L
    from lightning.pytorch.callbacks import Callback
    sys.path.insert(0, sys.argv[3])
    from test_training_runs import TwoOptimisers, loader
    from orchestrion.training import TrainingInterrupted, build_trainer, interruption_reported, quiet_lightning

    # as at a terminal: a background job (nohup ... &) starts with Ctrl-C ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)

    class SignalAt(Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 6:
                os.kill(os.getpid(), getattr(signal, sys.argv[2]))

    run = Path(sys.argv[1])
    last = run / "checkpoints" / "last.ckpt"
    with quiet_lightning(info=False):
        trainer = build_trainer(root_dir=run, checkpoint=last, steps_per_batch=2, max_steps=1000,
                                max_minutes=None, devices=1, strategy="auto", progress=False,
                                callbacks=[SignalAt()], checkpoint_minutes=60)
        try:
            with interruption_reported(last):
                trainer.fit(TwoOptimisers(pause_s=0.05), loader())
        except TrainingInterrupted as exc:
            print("stopped:", exc)
            sys.exit(3)
    print("not stopped")
""")


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_a_run_stopped_by_a_signal_saves_a_checkpoint_to_resume(tmp_path, signal_name):
    proc = subprocess.run([sys.executable, "-c", STOPPED_RUN, str(tmp_path), signal_name, str(Path(__file__).parent)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert "continue with --resume" in proc.stdout and str(last) in proc.stdout
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["global_step"] >= 6
    resumed = fit(tmp_path, resume=True, max_steps=saved["global_step"] // 2 + 2)
    assert resumed.global_step == saved["global_step"] + 4


def test_interruption_reported_says_when_nothing_was_saved(tmp_path):
    from orchestrion.training import TrainingInterrupted

    with pytest.raises(TrainingInterrupted, match="nothing was saved yet"), interruption_reported(tmp_path / "none.ckpt"):
        raise SystemExit(1)


def test_the_commands_default_checkpoint_period_is_the_trainers():
    from typer.main import get_command

    from orchestrion.cli import app
    from orchestrion.training import DEFAULT_CHECKPOINT_MINUTES

    train = get_command(app).commands["train"]
    for system in ("render", "note"):
        option = next(p for p in train.commands[system].params if p.name == "checkpoint_minutes")
        assert option.default == DEFAULT_CHECKPOINT_MINUTES == 5.0, system
