"""render — orGAN: multi-instrument pianoroll -> log-power spectrogram (conditional U-Net GAN).

SYSTEMS.md §1. Configuration in :mod:`.presets`, input encodings in :mod:`.encoding`, the
network that renders in :mod:`.model`; training's discriminator in :mod:`.discriminator`, the
whole GAN in :mod:`.gan` and its objectives in :mod:`.losses`. The names below are imported
on first use, so importing this package (or its inference) builds nothing it does not need.
"""

from orchestrion.lazy import lazy_exports

# Exported names by module, imported on first use: importing this package (as
# `orchestrion --help` does, for the commands) must not import torch, and inference never
# imports the training side (discriminator, gan, losses).
__getattr__, __all__ = lazy_exports(__name__, {
    "encoding": ("ENCODING_NAMES", "BinaryRollEncoding", "HarmonicRollEncoding", "RollEncoding",
                 "VelocityRollEncoding", "build_encoding", "harmonic_templates"),
    "model": ("Generator", "OrganNetwork", "padded_length"),
    "discriminator": ("Discriminator", "DiscriminatorOutput", "instrument_labels", "receptive_field"),
    "gan": ("OrganModel",),
    "losses": ("OrganLoss",),
    "presets": ("DISCRIMINATOR_VARIANTS", "PRESETS", "OrganConfig", "get_preset"),
})
