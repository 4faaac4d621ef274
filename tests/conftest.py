"""Shared fixtures: real FluidSynth renders of the bundled example score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pretty_midi
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_MIDI = REPO_ROOT / "examples" / "bach_chorale.mid"


@pytest.fixture(scope="session")
def example_midi() -> Path:
    """The bundled 4-part chorale (flute, clarinet, horn, bassoon; 22.5 s)."""
    return EXAMPLE_MIDI


@pytest.fixture(scope="session")
def renderer_16k():
    from orchestrion.data.render import FluidSynthRenderer

    with FluidSynthRenderer(sample_rate=16000) as renderer:
        yield renderer


@pytest.fixture(scope="session")
def chorale_16k(renderer_16k) -> tuple[np.ndarray, int]:
    """(wave, sample_rate): the first 6 s of a FluidSynth render of the example chorale."""
    wave = renderer_16k.render_score(pretty_midi.PrettyMIDI(str(EXAMPLE_MIDI)))
    return np.ascontiguousarray(wave[: 6 * 16000]), 16000
