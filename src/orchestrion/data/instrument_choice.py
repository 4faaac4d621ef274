"""Turn the instrument words of a build command (names, URMP codes, GM numbers) into programs and ranges."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from orchestrion.errors import ConfigError


@dataclass(frozen=True)
class InstrumentChoice:
    """An instrument to render: a name for files, its GM program, its playable MIDI range."""

    name: str
    program: int
    lowest: int
    highest: int


def resolve_instrument(token: str) -> InstrumentChoice:
    """A vocabulary name/alias/URMP code (its slot's program and range), or a GM number 0-127
    (that program, with the playable range of the slot it maps to)."""
    from orchestrion.symbolic.instruments import InstrumentVocabulary

    vocabulary = InstrumentVocabulary.default()
    token = str(token).strip()
    if token.isdigit():
        program = int(token)
        if not 0 <= program <= 127:
            raise ConfigError(f"GM program {program} is outside 0-127")
        slot = vocabulary.slot_for_program(program)
        return InstrumentChoice(f"gm{program:03d}", program, slot.lowest_pitch, slot.highest_pitch)
    slot = vocabulary.by_name(token)
    return InstrumentChoice(slot.name.replace(" ", "-"), slot.program, slot.lowest_pitch, slot.highest_pitch)


def resolve_instruments(tokens: Iterable[str]) -> list[InstrumentChoice]:
    """Resolve each token; duplicates are an error (they would write the same files twice)."""
    choices = [resolve_instrument(t) for t in tokens]
    names = [c.name for c in choices]
    if len(set(names)) != len(names):
        raise ConfigError(f"an instrument is named twice: {', '.join(names)}")
    if not choices:
        raise ConfigError("no instruments given")
    return choices
