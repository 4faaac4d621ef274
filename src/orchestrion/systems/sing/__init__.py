"""`note` system: SING, (instrument, pitch, velocity) -> a 4 s waveform.

A windowed conv autoencoder on waveforms, an LSTM that learns to produce the encoder's
latent sequence from embeddings, and end-to-end fine-tuning with a spectral loss
(Défossez et al., NeurIPS 2018; ELU / CQT / MFCC variants after seed 004).
"""

from orchestrion.systems.sing.model import (
    STAGES,
    FrameGeometry,
    SequenceGenerator,
    Sing,
    WaveformDecoder,
    WaveformEncoder,
)
from orchestrion.systems.sing.presets import PRESETS, SingConfig, get_preset

__all__ = [
    "PRESETS",
    "STAGES",
    "FrameGeometry",
    "SequenceGenerator",
    "Sing",
    "SingConfig",
    "WaveformDecoder",
    "WaveformEncoder",
    "get_preset",
]
