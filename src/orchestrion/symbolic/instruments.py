"""The instrument vocabulary: 16 instrument slots and the map from General MIDI programs to them.

The slots are the channels of every multi-track pianoroll (render system, SYSTEMS.md §1):
the 13 URMP instruments with related instruments adjacent, then piano, plucked strings and
voice in the three spare slots. The table is data (``instruments.json`` beside this module),
so a different vocabulary is a different file, not different code.

Examples
--------
>>> vocab = InstrumentVocabulary.default()
>>> len(vocab), vocab[0].name
(16, 'violin')
>>> vocab.slot_for_program(43).name       # GM "Contrabass"
'double bass'
>>> vocab.by_name("alto sax").urmp_code
'sax'
"""

from __future__ import annotations

import functools
import json
import operator
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pretty_midi

from orchestrion.errors import ConfigError

N_GM_PROGRAMS = 128
"""Number of General MIDI programs (0-based, 0..127, as in pretty_midi)."""

DEFAULT_VOCABULARY_FILE = "instruments.json"


class DrumTrackWarning(UserWarning):
    """A drum-kit track (MIDI channel 10) was left out: drums have no instrument slot."""


def track_label(instrument: pretty_midi.Instrument, index: int | None = None) -> str:
    """Describe a track for messages, e.g. ``"track 3 'Violin I' (Violin)"``.

    Parameters
    ----------
    instrument : pretty_midi.Instrument
        The track.
    index : int, optional
        Its position in ``score.instruments`` (0-based), shown 1-based.
    """
    number = f"track {index + 1}" if index is not None else "track"
    name = f" {instrument.name.strip()!r}" if instrument.name and instrument.name.strip() else ""
    if instrument.is_drum:
        kind = "drum kit"
    else:
        kind = pretty_midi.program_to_instrument_name(instrument.program)
    return f"{number}{name} ({kind})"


def warn_drum_track(instrument: pretty_midi.Instrument, index: int | None = None) -> None:
    """Warn (DrumTrackWarning) that a drum-kit track's notes are skipped, naming it and counting them."""
    count = len(instrument.notes)
    warnings.warn(
        f"{track_label(instrument, index)}: {count} drum note{'s' if count != 1 else ''} skipped"
        " (drums have no instrument slot)",
        DrumTrackWarning,
        stacklevel=3,
    )


def normalise_name(name: str) -> str:
    """Lower-case `name`, read ``_`` and ``-`` as spaces and collapse runs of spaces."""
    return re.sub(r"\s+", " ", re.sub(r"[_\-]", " ", name)).strip().lower()


@dataclass(frozen=True)
class Slot:
    """One instrument slot: one channel of a multi-track pianoroll.

    Attributes
    ----------
    index : int
        Position of the slot, i.e. its channel in a ``(slots, 128, frames)`` roll.
    name : str
        Canonical name, e.g. ``"double bass"``.
    program : int
        General MIDI program (0-based) used when a slot is written back to MIDI.
    urmp_code : str or None
        Instrument code in URMP file names (``"vn"``, ``"tpt"``, ...); None for spare slots.
    nsynth_family : str
        NSynth ``instrument_family_str`` of the slot's sound (``"string"``, ``"reed"``, ...).
    lowest_pitch, highest_pitch : int
        Playable range, sounding pitch, MIDI note numbers (C4 = 60), inclusive.
    aliases : tuple of str
        Other accepted names (normalised with :func:`normalise_name`).
    """

    index: int
    name: str
    program: int
    urmp_code: str | None
    nsynth_family: str
    lowest_pitch: int
    highest_pitch: int
    aliases: tuple[str, ...] = ()

    @property
    def pitch_range(self) -> tuple[int, int]:
        """``(lowest_pitch, highest_pitch)``, MIDI note numbers, inclusive."""
        return self.lowest_pitch, self.highest_pitch

    @property
    def is_urmp(self) -> bool:
        """True for the 13 URMP instruments, False for the spare slots."""
        return self.urmp_code is not None

    def contains_pitch(self, pitch: int) -> bool:
        """True if MIDI note `pitch` lies in the slot's playable range."""
        return self.lowest_pitch <= pitch <= self.highest_pitch


@dataclass(frozen=True)
class ProgramMapping:
    """Where one General MIDI program goes, and why.

    Attributes
    ----------
    program : int
        GM program, 0-based.
    gm_name : str
        Its General MIDI name, e.g. ``"English Horn"``.
    slot : Slot
        The slot it maps to.
    reason : str
        Key into :attr:`InstrumentVocabulary.mapping_reasons`, e.g. ``"same family"``.
    """

    program: int
    gm_name: str
    slot: Slot
    reason: str


class InstrumentVocabulary:
    """An ordered set of instrument slots plus the complete GM program -> slot table.

    Build it with :meth:`default` (the shipped 16-slot table) or :meth:`from_json`.
    Construction validates the table: unique slot names and aliases, ranges inside
    0..127, and every GM program 0..127 mapped exactly once with a documented reason.

    Parameters
    ----------
    data : mapping
        The parsed JSON document (keys ``slots``, ``gm_programs``, ``mapping_reasons``).
    source : str or Path, optional
        Where `data` came from; named in error messages.
    """

    def __init__(self, data: Mapping[str, Any], source: str | Path | None = None) -> None:
        self.source = None if source is None else Path(source)
        try:
            self._slots = tuple(
                self._parse_slot(index, entry) for index, entry in enumerate(data["slots"])
            )
            self.mapping_reasons: dict[str, str] = dict(data["mapping_reasons"])
            program_rows = list(data["gm_programs"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"instrument vocabulary is malformed ({type(exc).__name__}: {exc})", self.source
            ) from exc
        if not self._slots:
            raise ConfigError("instrument vocabulary has no slots", self.source)
        self._names: dict[str, Slot] = {}
        for slot in self._slots:
            keys = [slot.name, *slot.aliases] + ([slot.urmp_code] if slot.urmp_code else [])
            for key in keys:
                key = normalise_name(key)
                other = self._names.get(key)
                if other is not None and other is not slot:
                    raise ConfigError(
                        f"instrument name {key!r} is used by both {other.name!r} and {slot.name!r}",
                        self.source,
                    )
                self._names[key] = slot
        self._programs = self._parse_programs(program_rows)
        self._gm_names = {normalise_name(m.gm_name): m.program for m in self._programs}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_json(cls, path: str | Path) -> InstrumentVocabulary:
        """Read a vocabulary from a JSON file laid out like ``instruments.json``."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError("instrument vocabulary file not found", path) from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"instrument vocabulary is not readable JSON ({exc})", path) from exc
        return cls(data, source=path)

    @classmethod
    def default(cls) -> InstrumentVocabulary:
        """The shipped 16-slot vocabulary (``orchestrion/symbolic/instruments.json``), cached."""
        return _default_vocabulary()

    def _parse_slot(self, index: int, entry: Mapping[str, Any]) -> Slot:
        name = normalise_name(str(entry["name"]))
        program = int(entry["program"])
        lowest, highest = int(entry["lowest_pitch"]), int(entry["highest_pitch"])
        if not 0 <= program < N_GM_PROGRAMS:
            raise ConfigError(
                f"slot {name!r} has GM program {program}, outside 0..127", self.source
            )
        if not 0 <= lowest <= highest <= 127:
            raise ConfigError(
                f"slot {name!r} has pitch range {lowest}..{highest}; it must lie within"
                " MIDI notes 0..127 with the lowest note first",
                self.source,
            )
        code = entry.get("urmp_code")
        return Slot(
            index=index,
            name=name,
            program=program,
            urmp_code=None if code is None else str(code).lower(),
            nsynth_family=str(entry["nsynth_family"]),
            lowest_pitch=lowest,
            highest_pitch=highest,
            aliases=tuple(normalise_name(str(alias)) for alias in entry.get("aliases", ())),
        )

    def _parse_programs(self, rows: list[Mapping[str, Any]]) -> tuple[ProgramMapping, ...]:
        by_program: dict[int, ProgramMapping] = {}
        for row in rows:
            try:
                program = int(row["program"])
                slot_name, reason = str(row["slot"]), str(row["reason"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(
                    f"GM program table row {row!r} is malformed", self.source
                ) from exc
            if not 0 <= program < N_GM_PROGRAMS:
                raise ConfigError(
                    f"GM program table lists program {program}, outside 0..127", self.source
                )
            if program in by_program:
                raise ConfigError(f"GM program table lists program {program} twice", self.source)
            slot = self._names.get(normalise_name(slot_name))
            if slot is None:
                raise ConfigError(
                    f"GM program {program} maps to unknown slot {slot_name!r};"
                    f" slots are {', '.join(self.names)}",
                    self.source,
                )
            if reason not in self.mapping_reasons:
                raise ConfigError(
                    f"GM program {program} gives undocumented reason {reason!r}", self.source
                )
            gm_name = str(row.get("gm_name") or pretty_midi.program_to_instrument_name(program))
            by_program[program] = ProgramMapping(program, gm_name, slot, reason)
        missing = [p for p in range(N_GM_PROGRAMS) if p not in by_program]
        if missing:
            raise ConfigError(
                f"GM program table does not map programs {', '.join(map(str, missing))}",
                self.source,
            )
        return tuple(by_program[p] for p in range(N_GM_PROGRAMS))

    # ------------------------------------------------------------------ queries
    @property
    def slots(self) -> tuple[Slot, ...]:
        """All slots in channel order."""
        return self._slots

    @property
    def names(self) -> tuple[str, ...]:
        """Canonical slot names in channel order."""
        return tuple(slot.name for slot in self._slots)

    def __len__(self) -> int:
        return len(self._slots)

    def __iter__(self) -> Iterator[Slot]:
        return iter(self._slots)

    def __getitem__(self, index: int) -> Slot:
        return self._slots[index]

    def __repr__(self) -> str:
        where = f" from {self.source}" if self.source else ""
        return f"InstrumentVocabulary({len(self)} slots{where}: {', '.join(self.names)})"

    def program_mapping(self, program: int) -> ProgramMapping:
        """The table row for GM `program` (0-based): slot, GM name and reason."""
        try:
            if isinstance(program, bool):
                raise TypeError
            program = operator.index(program)
        except TypeError:
            raise ConfigError(
                f"GM program must be a whole number 0..127, got {program!r}"
            ) from None
        if not 0 <= program < N_GM_PROGRAMS:
            raise ConfigError(f"GM program {program} does not exist; programs are numbered 0..127")
        return self._programs[program]

    def general_midi_program(self, token: str) -> int | None:
        """The GM program (0-based) a word names: a number 0-127, or a General MIDI name (any
        case, ``_`` or ``-`` for spaces: ``"harpsichord"``, ``"Pan-Flute"``); else None."""
        text = str(token).strip()
        if text.isdigit():
            return int(text) if 0 <= int(text) <= 127 else None
        return self._gm_names.get(normalise_name(text))

    def slot_for_program(self, program: int) -> Slot:
        """The slot that plays GM `program` (0-based, as in pretty_midi).

        Raises
        ------
        ConfigError
            If `program` is not a whole number in 0..127.
        """
        return self.program_mapping(program).slot

    def slot_for_instrument(
        self, instrument: pretty_midi.Instrument, index: int | None = None
    ) -> Slot | None:
        """The slot for a pretty_midi track, or None for a drum-kit track.

        A drum track (``is_drum``) has no slot: it is left out with a
        :class:`DrumTrackWarning` naming the track (`index` is its position in the score).
        """
        if instrument.is_drum:
            warn_drum_track(instrument, index)
            return None
        return self.slot_for_program(instrument.program)

    def by_name(self, name: str) -> Slot:
        """Look a slot up by name, alias or URMP code: ``"contrabass"``, ``"Alto_Sax"``, ``"tpt"``.

        Raises
        ------
        ConfigError
            For an unknown name; the message lists the valid slot names.
        """
        slot = self._names.get(normalise_name(str(name)))
        if slot is None:
            raise ConfigError(
                f"unknown instrument {name!r}; choose one of: {', '.join(self.names)}"
                " (URMP codes and common aliases such as 'contrabass' or 'alto sax' also work)"
            )
        return slot

    def index_of(self, name: str) -> int:
        """Channel index of the slot called `name` (see :meth:`by_name`)."""
        return self.by_name(name).index


@functools.lru_cache(maxsize=1)
def _default_vocabulary() -> InstrumentVocabulary:
    resource = resources.files("orchestrion.symbolic").joinpath(DEFAULT_VOCABULARY_FILE)
    data = json.loads(resource.read_text(encoding="utf-8"))
    return InstrumentVocabulary(data, source=str(resource))
