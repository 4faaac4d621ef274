"""SING's three training stages as one LightningModule; the stage is a field, not a subclass.

- ``"autoencoder"``: encoder + decoder reconstruct the note; loss = the spectral loss (or
  waveform MSE, `SingConfig.autoencoder_loss`) between `Sing.autoencode(wave)` and
  `Sing.reconstruction_target(wave)`, both (B, decoded_length).
- ``"sequence"``: the LSTM generator learns the frozen encoder's latent sequence
  (B, D, n_steps) with MSE, by truncated back-propagation through time: the sequence is cut
  into chunks of `SingConfig.lstm_truncation_steps` frames, each chunk is one Adam step,
  and the LSTM state is carried (detached) into the next chunk.
- ``"finetune"``: generator + decoder end to end; loss = the spectral loss between
  `Sing.synthesize_padded(ids)` and the reconstruction target.

Optimisation is manual (one Adam over `Sing.stage_parameters(stage)`; the other weights
are frozen), so Lightning's ``global_step`` counts Adam steps: `optimizer_steps_per_batch`
of them per batch (the number of chunks in stage 2, else 1).

Logged: ``train/loss`` (each batch; in stage 2 the mean over its chunks), and on held-out
notes ``val/loss`` (the stage's loss; in stage 2 over the whole sequence) and
``val/waveform_l1`` (stages 1 and 3: mean |output - target| in sample units) and
``val/level_error_db`` (stages 1 and 3: mean |frame level error| in dB, `FrameLevelLoss`).
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from orchestrion.errors import ConfigError
from orchestrion.nn.spectral_losses import LEVEL_NEPER_DB, FrameLevelLoss
from orchestrion.systems.sing.model import STAGES, Sing, spectral_loss_from_config
from orchestrion.systems.sing.presets import SingConfig


class SingModule(L.LightningModule):
    """Trains one stage of a :class:`Sing` model.

    Parameters
    ----------
    config : the model and optimisation config.
    stage : "autoencoder", "sequence" or "finetune".

    Batches are dicts with ``audio`` (B, n_samples) float32 and ``instrument`` (model ids),
    ``pitch``, ``velocity`` (B,) integers, as `orchestrion.systems.sing.data.SingNotes` gives.
    """

    def __init__(self, config: SingConfig, stage: str) -> None:
        super().__init__()
        if stage not in STAGES:
            raise ConfigError(f"unknown SING training stage {stage!r}; choose one of {', '.join(STAGES)}")
        self.save_hyperparameters({"config": config.to_dict(), "stage": stage})
        self.config = config
        self.stage = stage
        self.model = Sing(config)
        self.spectral_loss = spectral_loss_from_config(config)
        self.level_loss = FrameLevelLoss(config.loss_n_fft, config.loss_hop_length)
        self.automatic_optimization = False
        self._trained = {id(p) for p in self.model.stage_parameters(stage)}
        for parameter in self.model.parameters():
            parameter.requires_grad_(id(parameter) in self._trained)

    # ------------------------------------------------------------------ bookkeeping
    @property
    def optimizer_steps_per_batch(self) -> int:
        """Adam steps per batch: the number of TBPTT chunks in stage 2, else 1."""
        if self.stage != "sequence":
            return 1
        chunk = self.config.lstm_truncation_steps or self.model.geometry.n_steps
        return math.ceil(self.model.geometry.n_steps / chunk)

    @property
    def in_warmup(self) -> bool:
        """Stage 1 still in its waveform-MSE warm-up (`autoencoder_warmup_batches`)."""
        return self.stage == "autoencoder" and self.global_step < self.config.autoencoder_warmup_batches

    def _ids(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        pitch = batch["pitch"]
        pitch = pitch.float() if pitch.is_floating_point() else pitch.long()  # detuned notes
        return (batch["instrument"].long(), pitch, batch["velocity"].long())

    def _reconstruction_loss(self, output: Tensor, target: Tensor) -> Tensor:
        chosen = self.config.autoencoder_loss if self.stage == "autoencoder" else self.config.finetune_loss
        if chosen == "waveform_mse":
            return F.mse_loss(output, target)
        loss = self.spectral_loss(output, target)
        if self.config.level_weight > 0:
            loss = loss + self.config.level_weight * self.level_loss(output, target)
        return loss

    def _latent_target(self, wave: Tensor) -> Tensor:
        """The frozen encoder's latent sequence (B, D, n_steps): stage 2's target."""
        with torch.no_grad():
            return self.model.encode(wave)

    # ------------------------------------------------------------------ losses
    def stage_output(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """(output, target) the stage compares, for the whole note.

        Stage 1: (B, decoded_length) autoencoded note and its target; stage 2: (B, D,
        n_steps) generated and encoded latents; stage 3: (B, decoded_length) generated note
        and its target.
        """
        wave = batch["audio"]
        if self.stage == "autoencoder":
            return self.model.autoencode(wave, batch["pitch"]), self.model.reconstruction_target(wave)
        if self.stage == "sequence":
            return self.model.generate_latent(*self._ids(batch)), self._latent_target(wave)
        return self.model.synthesize_padded(*self._ids(batch)), self.model.reconstruction_target(wave)

    def stage_loss(self, batch: dict[str, Any]) -> Tensor:
        """The stage's loss on a batch, over the whole note (no truncation): a scalar."""
        output, target = self.stage_output(batch)
        if self.stage == "sequence":
            return F.mse_loss(output, target)
        return self._reconstruction_loss(output, target)

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        optimizer = self.optimizers()
        if self.stage == "sequence":
            loss = self._truncated_sequence_step(batch, optimizer)
        elif self.in_warmup:
            optimizer.zero_grad(set_to_none=True)
            output, target = self.stage_output(batch)
            loss = F.mse_loss(output, target)
            self.manual_backward(loss)
            optimizer.step()
            self.log("train/warmup_mse", loss.detach(), prog_bar=True, batch_size=batch["audio"].shape[0])
            return loss.detach()
        else:
            optimizer.zero_grad(set_to_none=True)
            loss = self.stage_loss(batch)
            self.manual_backward(loss)
            optimizer.step()
            loss = loss.detach()
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["audio"].shape[0])
        return loss

    def _truncated_sequence_step(self, batch: dict[str, Any], optimizer: Any) -> Tensor:
        """One Adam step per chunk of `lstm_truncation_steps` frames; returns the mean MSE."""
        target = self._latent_target(batch["audio"])
        ids = self._ids(batch)
        n_steps = self.model.geometry.n_steps
        chunk = self.config.lstm_truncation_steps or n_steps
        state = None
        total = target.new_zeros(())
        for start in range(0, n_steps, chunk):
            length = min(chunk, n_steps - start)
            optimizer.zero_grad(set_to_none=True)
            latent, state = self.model.generator(*ids, start=start, length=length, state=state)
            state = (state[0].detach(), state[1].detach())
            loss = F.mse_loss(latent, target[..., start : start + length])
            self.manual_backward(loss)
            optimizer.step()
            total = total + loss.detach() * length
        return total / n_steps

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        size = batch["audio"].shape[0]
        output, target = self.stage_output(batch)
        if self.stage == "sequence":
            self.log("val/loss", F.mse_loss(output, target), prog_bar=True, batch_size=size)
            return
        self.log("val/loss", self._reconstruction_loss(output, target), prog_bar=True, batch_size=size)
        self.log("val/waveform_l1", F.l1_loss(output, target), batch_size=size)
        level_error_db = self.level_loss(output, target) * LEVEL_NEPER_DB
        self.log("val/level_error_db", level_error_db, batch_size=size)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.stage_parameters(self.stage), lr=self.config.learning_rate)

    def on_train_start(self) -> None:
        """Apply the config's learning rate to a resumed optimiser (its state keeps the old one)."""
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = self.config.learning_rate
