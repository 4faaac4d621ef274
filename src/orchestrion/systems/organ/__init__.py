"""render — orGAN: multi-instrument pianoroll -> log-power spectrogram (conditional U-Net GAN).

SYSTEMS.md §1. Configuration in :mod:`.presets`, input encodings in :mod:`.encoding`,
networks and objectives in :mod:`.model`.
"""

from orchestrion.systems import lazy_exports

# Exported names and their modules, imported on first use: importing this
# package (as `orchestrion --help` does, for the commands) must not import torch.
_HOMES = {
    "ENCODING_NAMES": "encoding",
    "BinaryRollEncoding": "encoding",
    "HarmonicRollEncoding": "encoding",
    "RollEncoding": "encoding",
    "VelocityRollEncoding": "encoding",
    "build_encoding": "encoding",
    "harmonic_templates": "encoding",
    "Discriminator": "model",
    "DiscriminatorOutput": "model",
    "Generator": "model",
    "OrganLoss": "model",
    "OrganModel": "model",
    "instrument_labels": "model",
    "padded_length": "model",
    "receptive_field": "model",
    "DISCRIMINATOR_VARIANTS": "presets",
    "PRESETS": "presets",
    "OrganConfig": "presets",
    "get_preset": "presets",
}

__getattr__ = lazy_exports(__name__, _HOMES)

__all__ = sorted(_HOMES)
