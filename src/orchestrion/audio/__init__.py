"""Audio core: file I/O, spectral transforms with inverses, phase reconstruction, energy.

Names are imported lazily (PEP 562), so ``import orchestrion.audio.io`` stays light
(no torch/librosa import) while ``from orchestrion.audio import Stft`` still works.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "io": ["load_audio", "save_audio", "resample", "to_mono", "check_finite", "AUDIO_SUFFIXES"],
    "spectral": [
        "Stft",
        "SpectralCompression",
        "LogPower",
        "LogMagnitude",
        "LogEpsPower",
        "Decibel",
        "MelScale",
        "MelSpectrogram",
        "Mfcc",
        "Cqt",
        "SpectrogramConfig",
        "COMPRESSIONS",
        "make_compression",
    ],
    "phase": ["griffin_lim", "istft_with_phase", "spectral_convergence"],
    "energy": ["energy_correction"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
