"""NSynth naming for General MIDI programs: family and source of each of the 128 programs.

NSynth names an instrument `<family>_<source>_<NNN>`; our renders use the GM program as NNN
(`string_acoustic_040` is FluidR3's violin). Families and sources follow NSynth's lists.
"""

from __future__ import annotations

from orchestrion.errors import ConfigError

# (first program, last program, family) in GM order; ranges not listed fall to the group rule.
_FAMILY_RANGES = (
    (0, 7, "keyboard"), (8, 15, "mallet"), (16, 23, "organ"), (24, 31, "guitar"), (32, 39, "bass"),
    (40, 45, "string"), (46, 46, "guitar"), (47, 47, "mallet"), (48, 51, "string"),
    (52, 54, "vocal"), (55, 55, "brass"), (56, 63, "brass"), (64, 71, "reed"), (72, 79, "flute"),
    (80, 103, "synth_lead"), (104, 107, "guitar"), (108, 108, "mallet"), (109, 109, "reed"),
    (110, 110, "string"), (111, 111, "reed"), (112, 119, "mallet"), (120, 127, "synth_lead"),
)
_ELECTRONIC = {2, 3, 4, 5, 16, 17, 18, 26, 27, 28, 29, 30, 31, 33, 34, 36, 37}
_SYNTHETIC = {38, 39, 50, 51, 54, 55, 62, 63, *range(80, 104), *range(120, 128)}


def _check(program: int) -> int:
    if not 0 <= int(program) <= 127:
        raise ConfigError(f"GM program {program} is outside 0-127")
    return int(program)


def nsynth_family(program: int) -> str:
    """NSynth instrument family of a 0-based GM program (e.g. 40 violin -> "string")."""
    program = _check(program)
    return next(family for lo, hi, family in _FAMILY_RANGES if lo <= program <= hi)


def nsynth_source(program: int) -> str:
    """NSynth instrument source of a GM program: acoustic, electronic or synthetic."""
    program = _check(program)
    if program in _SYNTHETIC:
        return "synthetic"
    return "electronic" if program in _ELECTRONIC else "acoustic"


def nsynth_instrument_str(program: int) -> str:
    """`<family>_<source>_<NNN>` with NNN the GM program (e.g. "reed_acoustic_071")."""
    return f"{nsynth_family(program)}_{nsynth_source(program)}_{_check(program):03d}"
