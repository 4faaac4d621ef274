"""render — orGAN: multi-instrument pianoroll -> log-power spectrogram (conditional U-Net GAN).

SYSTEMS.md §1. Configuration in :mod:`.presets`, input encodings in :mod:`.encoding`, the
network that renders in :mod:`.model`; training's discriminator in :mod:`.discriminator`, the
whole GAN in :mod:`.gan` and its objectives in :mod:`.losses`. The names below are imported
on first use, so importing this package (or its inference) builds nothing it does not need.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "ENCODING_NAMES": "encoding",
    "BinaryRollEncoding": "encoding",
    "HarmonicRollEncoding": "encoding",
    "RollEncoding": "encoding",
    "VelocityRollEncoding": "encoding",
    "build_encoding": "encoding",
    "harmonic_templates": "encoding",
    "Generator": "model",
    "OrganNetwork": "model",
    "padded_length": "model",
    "Discriminator": "discriminator",
    "DiscriminatorOutput": "discriminator",
    "instrument_labels": "discriminator",
    "receptive_field": "discriminator",
    "OrganModel": "gan",
    "OrganLoss": "losses",
    "DISCRIMINATOR_VARIANTS": "presets",
    "PRESETS": "presets",
    "OrganConfig": "presets",
    "get_preset": "presets",
}
"""Each public name and the module of this package that defines it."""

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
