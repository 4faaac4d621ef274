"""Example scores bundled with the package."""

from __future__ import annotations

from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent


def example_midi_path(name: str = "bach_chorale") -> Path:
    """Path of a bundled example MIDI file (default: the 4-part chorale BWV 66.6,
    arranged for flute, clarinet, horn and bassoon at 80 BPM, 22.5 s)."""
    return EXAMPLES_DIR / f"{name}.mid"
