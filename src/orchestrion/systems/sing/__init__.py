"""`note` system: SING, (instrument, pitch, velocity) -> a 4 s waveform.

A windowed conv autoencoder on waveforms, an LSTM that learns to produce the encoder's
latent sequence from embeddings, and end-to-end fine-tuning with a spectral loss
(Défossez et al., NeurIPS 2018; ELU / CQT / MFCC variants after seed 004).
"""

from orchestrion.systems import lazy_exports

# Exported names and their modules, imported on first use (no torch for `orchestrion --help`).
_HOMES = {
    "STAGES": "model",
    "FrameGeometry": "model",
    "SequenceGenerator": "model",
    "Sing": "model",
    "WaveformDecoder": "model",
    "WaveformEncoder": "model",
    "PRESETS": "presets",
    "SingConfig": "presets",
    "get_preset": "presets",
}
__getattr__ = lazy_exports(__name__, _HOMES)
__all__ = sorted(_HOMES)
