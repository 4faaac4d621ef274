"""render — orGAN: multi-instrument pianoroll -> log-power spectrogram (conditional U-Net GAN).

SYSTEMS.md §1. Configuration in :mod:`.presets`, input encodings in :mod:`.encoding`,
networks and objectives in :mod:`.model`.
"""

from orchestrion.systems import lazy_exports

# Exported names by module, imported on first use: importing this package (as
# `orchestrion --help` does, for the commands) must not import torch.
__getattr__, __all__ = lazy_exports(__name__, {
    "encoding": ("ENCODING_NAMES", "BinaryRollEncoding", "HarmonicRollEncoding", "RollEncoding",
                 "VelocityRollEncoding", "build_encoding", "harmonic_templates"),
    "model": ("Discriminator", "DiscriminatorOutput", "Generator", "OrganLoss", "OrganModel",
              "instrument_labels", "padded_length", "receptive_field"),
    "presets": ("DISCRIMINATOR_VARIANTS", "PRESETS", "OrganConfig", "get_preset"),
})
