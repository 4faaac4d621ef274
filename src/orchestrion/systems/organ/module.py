"""orGAN training logic as one LightningModule: losses, the G/D steps, the regime, validation."""

from __future__ import annotations

import random
from collections.abc import Iterator

import lightning as L
import torch
from torch.utils.data import Sampler

from orchestrion.errors import ConfigError
from orchestrion.nn.adversarial import class_weights_from_counts
from orchestrion.nn.msssim import MSSSIM
from orchestrion.nn.weight_average import WeightAverage
from orchestrion.systems.organ.data import OrganChunks, TargetSpectrogram
from orchestrion.systems.organ.discriminator import CLASSIFIER_WEIGHTS
from orchestrion.systems.organ.gan import OrganModel
from orchestrion.systems.organ.losses import OrganLoss
from orchestrion.systems.organ.model import GENERATOR_STATE
from orchestrion.systems.organ.presets import OrganConfig


class RegimeSampler(Sampler[int]):
    """Random chunks; while `single_only` is set, only single-instrument ones (seed's regimes).

    The module flips `single_only` when the transfer regime reaches its switch step. With
    num_workers=0 the flag is read live; an epoch is `epoch_size` draws.
    """

    def __init__(self, dataset: OrganChunks, single_only: bool, epoch_size: int, seed: int) -> None:
        self.single = dataset.single_instrument_indices() or list(range(len(dataset)))
        self.everything = list(range(len(dataset)))
        self.single_only = single_only
        self.epoch_size = epoch_size
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return self.epoch_size

    def __iter__(self) -> Iterator[int]:
        for _ in range(self.epoch_size):
            pool = self.single if self.single_only else self.everything
            yield pool[self.rng.randrange(len(pool))]


CLASSIFIER_GAIN_JITTER_DB = 6.0
"""A classifier-only step scales each real chunk by a random gain within +-this many dB, so the
classifier names instruments by their spectra, not by the level of our renders."""


class OrganModule(L.LightningModule):
    """Trains an :class:`OrganModel` with the seed's alternating D/G Adam steps.

    With `classifier_only`, only the instrument classifier learns (on real chunks, with a
    random level per chunk); the generator and the patch discriminator stay as they are.
    """

    def __init__(self, config: OrganConfig, total_steps: int = 0,
                 label_counts: list[int] | None = None, n_chunks: int = 0,
                 classifier_only: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config.to_dict(), "total_steps": total_steps,
                                   "label_counts": label_counts, "n_chunks": n_chunks,
                                   "classifier_only": classifier_only})
        self.config = config
        self.model = OrganModel.from_config(config)
        if classifier_only and not (config.uses_classifier and config.classifier_input == "spectrogram"):
            raise ConfigError("training the classifier alone needs a model with an instrument classifier "
                              "on the spectrogram (classifier_input=spectrogram, instrument_weight > 0)")
        self.classifier_only = classifier_only
        self.loss = OrganLoss(config)
        self.ms_ssim = MSSSIM()
        self.target = TargetSpectrogram(config)
        if label_counts is not None and config.uses_classifier:
            counts = torch.tensor(label_counts, dtype=torch.float32)
            self.loss.instrument.set_class_weights(class_weights_from_counts(counts, n_total=n_chunks))
        if config.lr_warmup_fraction > 0 and total_steps <= 0:
            raise ConfigError("lr_warmup_fraction needs the run's length (total_steps > 0) to ramp over")
        self.total_steps = total_steps
        self.generator_average: WeightAverage | None = None
        if config.ema_decay > 0 and not classifier_only:
            self.generator_average = WeightAverage(self.model, GENERATOR_STATE, config.ema_decay)
        self.sampler: RegimeSampler | None = None
        self.automatic_optimization = False

    # ------------------------------------------------------------------ regime
    def in_first_stage(self) -> bool:
        """True while the transfer regime is still on single-instrument data."""
        config = self.config
        if config.regime == "single":
            return True
        if config.regime == "multi" or self.total_steps <= 0:
            return False
        return self.progress() < config.transfer_switch_fraction

    def progress(self) -> float:
        """How far the run is, from 0 at its first batch to 1 at its last (`total_steps`)."""
        if self.total_steps <= 0:
            return 0.0
        return self.global_step / (self.total_steps * self._steps_per_batch())

    def _apply_learning_rate(self) -> None:
        """Set every optimiser's rate from the config's schedule at the current step."""
        rate = self.config.learning_rate_at(self.progress())
        for optimizer in self._optimizer_list():
            for group in optimizer.param_groups:
                group["lr"] = rate * group.get("lr_factor", 1.0)
        self.log("lr", rate, prog_bar=False)

    def _optimizer_list(self) -> list:
        """The optimisers of :meth:`configure_optimizers` as a list (Lightning unwraps a lone one)."""
        optimizers = self.optimizers()
        return list(optimizers) if isinstance(optimizers, (list, tuple)) else [optimizers]

    def _steps_per_batch(self) -> int:
        return self.config.optimizer_steps_per_batch(self.classifier_only)

    def training_steps(self, optimizer_steps: int) -> int:
        """Training steps (batches) in Lightning's ``global_step``, which counts optimiser steps."""
        return int(optimizer_steps) // self._steps_per_batch()

    def uses_classifier_now(self) -> bool:
        config = self.config
        if not config.uses_classifier:
            return False
        if config.regime == "transfer" and self.in_first_stage():
            return config.transfer_first_stage_classifier
        return True

    # ------------------------------------------------------------------ steps
    def _prepare(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(target spectrogram, encoded roll, instrument labels)."""
        with torch.no_grad():
            real = self.target(batch["audio"]).unsqueeze(1)
        onsets = batch["onsets"] if self.config.onset_channels else None
        condition = self.model.condition(batch["roll"], onsets)
        return real, condition, batch["instruments"]

    def _classifier_step(self, batch: dict) -> None:
        """One Adam step of the instrument classifier alone, on real chunks at random levels."""
        audio = batch["audio"]
        decibels = (2 * torch.rand(audio.shape[0], 1, device=audio.device) - 1) * CLASSIFIER_GAIN_JITTER_DB
        with torch.no_grad():
            real = self.target(audio * 10 ** (decibels / 20)).unsqueeze(1)
        condition = None
        if self.config.classifier_pitch_hint:
            with torch.no_grad():
                condition = self.model.condition(batch["roll"])
        logits, voices = self.model.discriminator.judge_instruments(real, condition=condition)  # type: ignore[union-attr]
        loss = self.loss.instrument_loss(logits, batch["instruments"], voices)
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()
        self.log("c/instrument", loss.detach(), prog_bar=True)

    def training_step(self, batch: dict, batch_idx: int) -> None:
        self._apply_learning_rate()
        if self.classifier_only:
            self._classifier_step(batch)
            return
        if self.sampler is not None:
            self.sampler.single_only = self.in_first_stage()
        use_classifier = self.uses_classifier_now()
        g_opt, d_opt = (*self._optimizer_list(), None)[:2]
        real, condition, labels = self._prepare(batch)
        side = self.model.age_condition(batch["roll"], batch["onsets"], batch.get("ages"))
        fake = self.model.generate(condition, batch["roll"], side, ages=batch.get("ages"), onsets=batch["onsets"])
        if d_opt is not None:
            real_j = self.model.discriminate(real, condition.detach())
            fake_j = self.model.discriminate(fake.detach(), condition.detach())
            d_terms = self.loss.discriminator_loss(real_j, fake_j, labels, use_classifier)
            d_opt.zero_grad(set_to_none=True)
            self.manual_backward(d_terms["total"])
            d_opt.step()
            self.log_dict({f"d/{k}": v.detach() for k, v in d_terms.items()}, prog_bar=False)
        judgement = self.model.discriminate(fake, condition) if d_opt is not None else None
        g_terms = self.loss.generator_loss(fake, real, judgement, labels, use_classifier)
        g_opt.zero_grad(set_to_none=True)
        self.manual_backward(g_terms["total"])
        g_opt.step()
        if self.generator_average is not None:
            self.generator_average.update(self.model)
        self.log_dict({f"g/{k}": v.detach() for k, v in g_terms.items()}, prog_bar=False)
        self.log("g_loss", g_terms["total"].detach(), prog_bar=True)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        real, condition, labels = self._prepare(batch)
        if not self.classifier_only:
            fake = self.generate_for_export(batch["roll"], batch["onsets"], batch.get("ages"))
            ms_ssim = self.ms_ssim(self.loss.unit_db(fake).clamp(0, 1), self.loss.unit_db(real).clamp(0, 1))
            self.log("val/ms_ssim", ms_ssim, prog_bar=True, batch_size=real.shape[0])
            self.log("val/l1", torch.nn.functional.l1_loss(fake, real), prog_bar=True, batch_size=real.shape[0])
        if self.model.discriminator is not None and self.config.uses_classifier:
            probabilities = torch.sigmoid(self.model.discriminate(real, condition).instrument_logits)
            correct = ((probabilities > 0.5) == (labels > 0.5)).all(dim=1).float().mean()
            self.log("val/macro_acc", correct, prog_bar=self.classifier_only, batch_size=real.shape[0])

    def generate_for_export(self, roll: torch.Tensor, onsets: torch.Tensor | None,
                            ages: torch.Tensor | None = None) -> torch.Tensor:
        """The generator (with its encoding) as it will be exported: its moving average when
        one is kept, else the current weights."""
        if self.generator_average is None:
            return self.model(roll, onsets, ages)
        averaged = self.generator_average.averaged_state()
        return torch.func.functional_call(self.model, averaged, (roll, onsets, ages), strict=False)

    def export_state(self) -> dict[str, torch.Tensor]:
        """The model's state to export: the generator's moving average in place of its
        last weights when one is kept."""
        state = dict(self.model.state_dict())
        if self.generator_average is not None:
            state.update(self.generator_average.averaged_state())
        return state

    def classifier_parameters(self) -> list[torch.nn.Parameter]:
        """The instrument classifier's own weights (its convolutions and linear layer)."""
        return [p for name, p in self.model.named_parameters() if name.startswith(CLASSIFIER_WEIGHTS)]

    def configure_optimizers(self):
        config = self.config
        if self.classifier_only:
            return torch.optim.Adam(self.classifier_parameters(), lr=config.learning_rate, betas=config.betas)
        own_age_rate = bool(self.model.age_parameters()) and config.age_lr_factor != 1.0
        groups = [{"params": self.model.generator_parameters(with_age_input=not own_age_rate)}]
        if own_age_rate:  # a group of its own only when its rate differs, so older runs resume
            groups.append({"params": self.model.age_parameters(), "lr_factor": config.age_lr_factor})
        if self.model.lobe_parameters():
            groups.append({"params": self.model.lobe_parameters(), "lr_factor": config.partials_lr_factor})
        g_opt = torch.optim.Adam(groups, lr=config.learning_rate, betas=config.betas)
        if self.model.discriminator is None:
            return g_opt
        d_opt = torch.optim.Adam(self.model.discriminator.parameters(), lr=config.learning_rate, betas=config.betas)
        return [g_opt, d_opt]
