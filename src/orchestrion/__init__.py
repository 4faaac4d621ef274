"""orchestrion: neural music synthesis on one shared audio + MIDI core."""

__version__ = "0.1.0"
