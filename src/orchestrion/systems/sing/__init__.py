"""`note` system: SING, (instrument, pitch, velocity) -> a 4 s waveform.

A windowed conv autoencoder on waveforms, an LSTM that learns to produce the encoder's
latent sequence from embeddings, and end-to-end fine-tuning with a spectral loss
(Défossez et al., NeurIPS 2018; ELU / CQT / MFCC variants after seed 004).
"""

from orchestrion.lazy import lazy_exports

# Exported names by module, imported on first use (no torch for `orchestrion --help`).
__getattr__, __all__ = lazy_exports(__name__, {
    "model": ("STAGES", "FrameGeometry", "SequenceGenerator", "Sing", "WaveformDecoder", "WaveformEncoder"),
    "presets": ("PRESETS", "SingConfig", "get_preset"),
})
