"""The orGAN that training builds: the rendering network (:class:`OrganNetwork`) and its
discriminator (:mod:`.discriminator`). Rendering builds the network alone."""

from __future__ import annotations

from torch import Tensor

from orchestrion.errors import ConfigError
from orchestrion.systems.organ.discriminator import Discriminator, DiscriminatorOutput, build_discriminator
from orchestrion.systems.organ.model import OrganNetwork, count_parameters
from orchestrion.systems.organ.presets import OrganConfig


class OrganModel(OrganNetwork):
    """:class:`OrganNetwork` and, when `config` uses one, its discriminator (``discriminator.*`` weights).

    ``model(roll)`` renders: (B, 16, 128, T) -> log-power spectrogram (B, 1, n_bins, T).
    """

    def __init__(self, config: OrganConfig) -> None:
        super().__init__(config)
        self.discriminator: Discriminator | None = None
        if config.uses_discriminator:
            self.discriminator = build_discriminator(config, self.encoding.out_channels)

    @classmethod
    def from_config(cls, config: OrganConfig) -> OrganModel:
        """Build the model a config describes."""
        return cls(config)

    def discriminate(self, spectrogram: Tensor, condition: Tensor) -> DiscriminatorOutput:
        """Run the discriminator on (B, 1, n_bins, T) given the encoded roll (B, C, n_bins, T).

        In the discriminator's step pass ``condition.detach()`` (and the fake detached):
        a learned encoding belongs to the generator and is updated by its loss only.
        """
        if self.discriminator is None:
            raise ConfigError(
                "this orGAN configuration has no discriminator "
                "(its adversarial and instrument weights are 0)"
            )
        return self.discriminator(spectrogram, condition)

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per part (the discriminator too) and in total."""
        counts = super().parameter_counts()
        counts["discriminator"] = count_parameters(self.discriminator)
        counts["total"] += counts["discriminator"]
        return counts
