"""orGAN's training objectives: the generator's and the discriminator's losses (:class:`OrganLoss`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from orchestrion.audio.phase import spectral_convergence
from orchestrion.errors import ConfigError
from orchestrion.metrics.audio import MR_STFT_LOG_EPS
from orchestrion.nn.adversarial import AdversarialLoss, WeightedMultiHotBCE
from orchestrion.nn.msssim import MSSSIMLoss
from orchestrion.systems.organ.discriminator import DiscriminatorOutput, VoiceJudgement
from orchestrion.systems.organ.presets import OrganConfig

SILENT_POWER = 1e-14
"""Power added under the square root of :meth:`OrganLoss.log_magnitude` (a gained magnitude of 1e-7,
far below the 1e-5 floor), so its gradient stays finite at exact silence."""


class OrganLoss(nn.Module):
    """orGAN's composite objectives (seed §4.7), weights from :class:`OrganConfig`.

    ``L_G = adv * L_adv_G + l1 * L1(S) + msssim * (1 - MS-SSIM(dB)) + inst * BCE_w(fake)
    + sc * SC(|X|) + log_mag * L1(ln(|x| + 1e-5))``

    ``L_D = factor * (L_adv(real) + L_adv(fake)) + inst * BCE_w(real)``

    L1 compares the log-power spectrograms; MS-SSIM compares them converted to dB and
    mapped to [0, 1] (:meth:`unit_db`); ``BCE_w`` is the class-weighted multi-hot BCE
    (set the weights from the training labels with ``loss.instrument.set_class_weights``).
    Terms with weight 0 are not computed.
    """

    def __init__(self, config: OrganConfig) -> None:
        super().__init__()
        self.config = config
        self.adversarial = AdversarialLoss(config.gan_loss)
        self.msssim = MSSSIMLoss(data_range=1.0)
        self.instrument = WeightedMultiHotBCE(n_classes=config.n_slots)

    def floored_power(self, spectrogram: Tensor) -> Tensor:
        """Log-power S = ln(1 + |X|^2) -> ``|exp(S) - 1| + 10**(db_floor/10)``.

        The floor, added as a power, keeps the dB map and the square root of `unit_db` and
        `magnitude` smooth with a bounded slope where a bin is silent.
        """
        return torch.expm1(spectrogram).abs() + 10.0 ** (self.config.db_floor / 10.0)

    def unit_db(self, spectrogram: Tensor, power: Tensor | None = None) -> Tensor:
        """Log-power S = ln(1 + |X|^2) -> dB mapped from [db_floor, db_ceiling] to [0, 1].

        ``(10 log10(floored power) - floor) / (ceiling - floor)``: smooth, >= 0. Values above
        the ceiling exceed 1 (not clipped). Any shape -> same shape. `power`, when given, is
        `floored_power(spectrogram)` already computed.
        """
        floor, ceiling = self.config.db_floor, self.config.db_ceiling
        power = self.floored_power(spectrogram) if power is None else power
        return (10.0 * torch.log10(power) - floor) / (ceiling - floor)

    def magnitude(self, spectrogram: Tensor, power: Tensor | None = None) -> Tensor:
        """Log-power S = ln(1 + |X|^2) -> magnitude |X| (of the gain-scaled audio), from the
        floored power (`power`, when given, is `floored_power(spectrogram)`)."""
        return torch.sqrt(self.floored_power(spectrogram) if power is None else power)

    def log_magnitude(self, spectrogram: Tensor) -> Tensor:
        """Log-power S -> ``ln(|x| + 1e-5)``, |x| the STFT magnitude of the audio itself.

        The input gain is divided out, so the floor is the audio protocol's MR-STFT
        epsilon; a tiny power floor (far below it) keeps the square root's slope finite.
        """
        power = torch.expm1(spectrogram).clamp_min(0.0) + SILENT_POWER
        return torch.log(torch.sqrt(power) / self.config.input_gain + MR_STFT_LOG_EPS)

    def generator_loss(
        self,
        fake: Tensor,
        real: Tensor,
        judgement: DiscriminatorOutput | None,
        labels: Tensor | None = None,
        use_classifier: bool = True,
    ) -> dict[str, Tensor]:
        """Generator terms and their weighted total.

        Parameters
        ----------
        fake, real : Tensor, (B, 1, n_bins, T)
            Generated and true log-power spectrograms.
        judgement : DiscriminatorOutput or None
            The discriminator on the fakes (None when no term needs it).
        labels : Tensor (B, S), optional
            Multi-hot instrument labels (:func:`instrument_labels`), for the classifier term.
        use_classifier : bool
            Whether this training stage uses the classifier term.

        Returns
        -------
        dict with "total" and each computed term ("adversarial", "l1", "msssim", "sc",
        "log_mag", "instrument").
        """
        config = self.config
        terms: dict[str, Tensor] = {}
        total = fake.new_zeros(())
        if config.adversarial_weight > 0 and judgement is not None:
            terms["adversarial"] = self.adversarial.generator(judgement.patch_logits)
            total = total + config.adversarial_weight * terms["adversarial"]
        if config.l1_weight > 0:
            terms["l1"] = F.l1_loss(fake, real)
            total = total + config.l1_weight * terms["l1"]
        if config.msssim_weight > 0 or config.spectral_convergence_weight > 0:
            power_fake, power_real = self.floored_power(fake), self.floored_power(real)
        if config.msssim_weight > 0:
            db_fake, db_real = self.unit_db(fake, power_fake), self.unit_db(real, power_real)
            terms["msssim"] = self.msssim(db_fake, db_real)
            total = total + config.msssim_weight * terms["msssim"]
        if config.log_magnitude_weight > 0:
            terms["log_mag"] = F.l1_loss(self.log_magnitude(fake), self.log_magnitude(real))
            total = total + config.log_magnitude_weight * terms["log_mag"]
        if config.spectral_convergence_weight > 0:
            terms["sc"] = spectral_convergence(self.magnitude(real, power_real),
                                               self.magnitude(fake, power_fake)).mean()
            total = total + config.spectral_convergence_weight * terms["sc"]
        if self._classifier_term(use_classifier, judgement, labels):
            terms["instrument"] = self.instrument_loss(judgement.instrument_logits, labels,  # type: ignore[union-attr]
                                                       judgement.voices)  # type: ignore[union-attr]
            total = total + config.instrument_weight * terms["instrument"]
        terms["total"] = total
        return terms

    def discriminator_loss(
        self,
        real_judgement: DiscriminatorOutput,
        fake_judgement: DiscriminatorOutput,
        labels: Tensor | None = None,
        use_classifier: bool = True,
    ) -> dict[str, Tensor]:
        """Discriminator terms and their weighted total (classifier trained on real only).

        Returns
        -------
        dict with "total", "adversarial" and, when used, "instrument".
        """
        config = self.config
        adversarial = self.adversarial.discriminator(
            real_judgement.patch_logits, fake_judgement.patch_logits
        )
        terms = {"adversarial": adversarial}
        total = config.discriminator_adversarial_factor * terms["adversarial"]
        if self._classifier_term(use_classifier, real_judgement, labels):
            terms["instrument"] = self.instrument_loss(real_judgement.instrument_logits, labels,  # type: ignore[arg-type]
                                                       real_judgement.voices)
            total = total + config.instrument_weight * terms["instrument"]
        terms["total"] = total
        return terms

    def instrument_loss(self, logits: Tensor, labels: Tensor, voices: VoiceJudgement | None = None) -> Tensor:
        """Class-weighted BCE of the instrument logits (B, S) against multi-hot labels (B, S);
        given a classifier of voices' `voices`, of each voice's logits against its own slot
        (one-hot, or none where the slot is silent in the audio although its notes are in the
        score) instead."""
        if voices is None:
            return self.instrument(logits, labels)
        targets = F.one_hot(voices.slot, labels.shape[1]).to(labels.dtype)
        targets = targets * labels[voices.owner, voices.slot].unsqueeze(1)
        if len(targets) == 0:  # no notes anywhere in the batch: nothing to name
            return voices.logits.sum() * 0.0
        return self.instrument(voices.logits, targets)

    def _classifier_term(
        self, use: bool, judgement: DiscriminatorOutput | None, labels: Tensor | None
    ) -> bool:
        if not use or not self.config.uses_classifier:
            return False
        if judgement is None or judgement.instrument_logits is None:
            raise ConfigError(
                "the instrument classifier term needs a discriminator built with a classifier"
            )
        if labels is None:
            raise ConfigError(
                "the instrument classifier term needs multi-hot instrument labels (batch, slots)"
            )
        return True
