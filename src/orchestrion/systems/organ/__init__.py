"""render — orGAN: multi-instrument pianoroll -> log-power spectrogram (conditional U-Net GAN).

SYSTEMS.md §1. Configuration in :mod:`.presets`, input encodings in :mod:`.encoding`,
networks and objectives in :mod:`.model`.
"""

from orchestrion.systems.organ.encoding import (
    ENCODING_NAMES,
    BinaryRollEncoding,
    HarmonicRollEncoding,
    RollEncoding,
    VelocityRollEncoding,
    build_encoding,
    harmonic_templates,
)
from orchestrion.systems.organ.model import (
    Discriminator,
    DiscriminatorOutput,
    Generator,
    OrganLoss,
    OrganModel,
    instrument_labels,
    padded_length,
    receptive_field,
)
from orchestrion.systems.organ.presets import (
    DISCRIMINATOR_VARIANTS,
    PRESETS,
    OrganConfig,
    get_preset,
)

__all__ = [
    "DISCRIMINATOR_VARIANTS",
    "ENCODING_NAMES",
    "PRESETS",
    "BinaryRollEncoding",
    "Discriminator",
    "DiscriminatorOutput",
    "Generator",
    "HarmonicRollEncoding",
    "OrganConfig",
    "OrganLoss",
    "OrganModel",
    "RollEncoding",
    "VelocityRollEncoding",
    "build_encoding",
    "get_preset",
    "harmonic_templates",
    "instrument_labels",
    "padded_length",
    "receptive_field",
]
