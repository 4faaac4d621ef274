"""orGAN inference input: a score's tracks assigned to the model's instrument slots, and
the pianoroll streamed a stretch of frames at a time (:func:`prepare_score`,
:class:`StreamingRoll`; steps 1-2 of ``infer.render_score``).

Unlearned slots
---------------
A slot is *learned* if the checkpoint lists it: a ``trained_slots`` list (names or
indices) in the checkpoint's config, else a ``trained slots: ...`` line in its model card,
else the 13 URMP instruments (the piano, plucked strings and voice slots are then
unlearned). A track on an unlearned slot is played by the trained slot whose range
(``instruments.json``) covers most of the track's notes (then: the smaller mean distance
outside the range), ties broken by the preference order of :data:`SUBSTITUTE_PREFERENCES`
- same family first for the URMP slots, and for the spare slots: piano -> bowed strings
then winds (the widest compass with a soft attack), plucked strings -> bowed strings,
voice -> the breath-driven winds (clarinet, horn, oboe, flute, ...).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pretty_midi

from orchestrion.errors import ConfigError, EmptyScoreError
from orchestrion.symbolic.instruments import InstrumentVocabulary, Slot, track_label
from orchestrion.symbolic.midi import ScoreLike, ScoreRepairWarning, as_score, melodic_instruments
from orchestrion.symbolic.pianoroll import cut_restrike_gaps, score_to_pianoroll, time_to_frame

if TYPE_CHECKING:
    from orchestrion.systems.organ.infer import RenderModel

_SUBSTITUTE_ORDER = {
    # spare slots (never in URMP): family or sound-production neighbours first
    "piano": (
        "cello, viola, violin, bassoon, clarinet, horn, double bass, flute, oboe, "
        "saxophone, trombone, trumpet, tuba"
    ),
    "plucked strings": (
        "cello, viola, violin, double bass, bassoon, clarinet, horn, flute, oboe, "
        "saxophone, trombone, trumpet, tuba"
    ),
    "voice": (
        "clarinet, horn, oboe, flute, saxophone, viola, cello, bassoon, trombone, "
        "violin, trumpet, tuba, double bass"
    ),
    # URMP slots (for models trained on some of them only): same family first
    "violin": (
        "viola, cello, double bass, flute, oboe, clarinet, saxophone, trumpet, horn, "
        "bassoon, trombone, tuba"
    ),
    "viola": (
        "violin, cello, double bass, clarinet, horn, oboe, flute, saxophone, bassoon, "
        "trumpet, trombone, tuba"
    ),
    "cello": (
        "viola, double bass, violin, bassoon, horn, trombone, saxophone, clarinet, "
        "tuba, oboe, flute, trumpet"
    ),
    "double bass": (
        "cello, viola, violin, tuba, bassoon, trombone, horn, saxophone, clarinet, "
        "oboe, flute, trumpet"
    ),
    "flute": (
        "oboe, clarinet, saxophone, violin, bassoon, trumpet, horn, viola, cello, "
        "trombone, double bass, tuba"
    ),
    "oboe": (
        "clarinet, flute, saxophone, bassoon, violin, trumpet, horn, viola, cello, "
        "trombone, double bass, tuba"
    ),
    "clarinet": (
        "saxophone, oboe, flute, bassoon, horn, viola, violin, trumpet, cello, "
        "trombone, double bass, tuba"
    ),
    "saxophone": (
        "clarinet, bassoon, oboe, flute, horn, trombone, cello, viola, trumpet, violin, "
        "tuba, double bass"
    ),
    "bassoon": (
        "saxophone, clarinet, oboe, flute, cello, horn, trombone, tuba, double bass, "
        "viola, violin, trumpet"
    ),
    "trumpet": (
        "horn, trombone, tuba, oboe, clarinet, saxophone, flute, violin, viola, "
        "bassoon, cello, double bass"
    ),
    "horn": (
        "trombone, trumpet, tuba, bassoon, saxophone, clarinet, cello, viola, oboe, "
        "flute, violin, double bass"
    ),
    "trombone": (
        "horn, tuba, trumpet, bassoon, saxophone, cello, clarinet, double bass, viola, "
        "oboe, violin, flute"
    ),
    "tuba": (
        "trombone, horn, trumpet, double bass, bassoon, cello, saxophone, clarinet, "
        "viola, oboe, violin, flute"
    ),
}
SUBSTITUTE_PREFERENCES: dict[str, tuple[str, ...]] = {
    slot: tuple(name.strip() for name in names.split(","))
    for slot, names in _SUBSTITUTE_ORDER.items()
}
"""Substitute candidates per slot, in tie-break order (register fit decides first)."""

_CARD_SLOTS = re.compile(r"^[\s>*-]*trained slots?\s*:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)


class RenderWarning(UserWarning):
    """A score was rendered with a change: an unlearned instrument played by another slot."""


def _slot_indices(
    entries: Sequence[str | int], vocabulary: InstrumentVocabulary, source: str
) -> tuple[int, ...]:
    indices = set()
    for entry in entries:
        if isinstance(entry, (int, np.integer)) and not isinstance(entry, bool):
            if not 0 <= int(entry) < len(vocabulary):
                raise ConfigError(
                    f"{source}: slot {entry} does not exist (0..{len(vocabulary) - 1})"
                )
            indices.add(int(entry))
        else:
            indices.add(vocabulary.by_name(str(entry).strip().strip("`")).index)
    return tuple(sorted(indices))


def trained_slot_names(label_counts: Sequence[int] | None, vocabulary: InstrumentVocabulary) -> list[str]:
    """Names of the slots a run's training chunks held (`label_counts`: chunks per slot)."""
    return [vocabulary[i].name for i, n in enumerate(label_counts or []) if n > 0]


def trained_slots_of(config: dict, card: str, vocabulary: InstrumentVocabulary) -> tuple[int, ...]:
    """Slots a checkpoint's model learned (see the module notes, *Unlearned slots*).

    Parameters
    ----------
    config : dict
        The checkpoint's config values; a ``trained_slots`` entry (names or indices) wins.
    card : str
        The model card; a line ``trained slots: violin, flute, ...`` is used next.
    vocabulary : InstrumentVocabulary

    Returns
    -------
    tuple of int, sorted slot indices; the 13 URMP slots when nothing says otherwise.
    """
    listed = config.get("trained_slots")
    if listed:
        return _slot_indices(list(listed), vocabulary, "trained_slots in the checkpoint config")
    match = _CARD_SLOTS.search(card or "")
    if match:
        names = [name for name in match.group(1).split(",") if name.strip()]
        if names:
            return _slot_indices(names, vocabulary, "the model card's trained slots")
    return tuple(slot.index for slot in vocabulary if slot.is_urmp)


@dataclass(frozen=True)
class PreparedScore:
    """A score reduced to what the generator plays.

    Attributes
    ----------
    tracks : list of (slot index, pretty_midi.Instrument)
        Melodic tracks with their slot after substitution; each track's program is its
        slot's own GM program, so rasterising maps it to that slot.
    end_s : float
        End of the last playable note, seconds.
    warnings : list of str
        Drum tracks left out, notes repaired, instruments substituted.
    """

    tracks: list[tuple[int, pretty_midi.Instrument]]
    end_s: float
    warnings: list[str]

    @property
    def slots(self) -> tuple[int, ...]:
        """The slots that play, sorted."""
        return tuple(sorted({slot for slot, _ in self.tracks}))


def _playable(note: pretty_midi.Note) -> bool:
    """The notes :func:`score_to_pianoroll` keeps."""
    return 0 <= note.start < note.end and 0 <= note.pitch < 128 and 1 <= note.velocity <= 127


def _register_fit(slot: Slot, pitches: np.ndarray) -> tuple[float, float]:
    """(share of `pitches` in the slot's range, minus their mean distance outside it, semitones)."""
    inside = (pitches >= slot.lowest_pitch) & (pitches <= slot.highest_pitch)
    below = np.clip(slot.lowest_pitch - pitches, 0, None)
    above = np.clip(pitches - slot.highest_pitch, 0, None)
    return float(inside.mean()), -float((below + above).mean())


def substitute_slot(
    slot: Slot, pitches: Sequence[int], trained: Sequence[int], vocabulary: InstrumentVocabulary
) -> Slot:
    """The trained slot that plays a track written for the unlearned `slot`.

    The trained slot whose range covers most of `pitches` (then the smaller mean distance
    outside the range); ties go to the earlier one in ``SUBSTITUTE_PREFERENCES[slot]``,
    then to vocabulary order.
    """
    trained_set = set(trained)
    if not trained_set:
        raise ConfigError("the model lists no trained instrument slots")
    preference = [
        vocabulary.by_name(name).index for name in SUBSTITUTE_PREFERENCES.get(slot.name, ())
    ]
    order = {index: rank for rank, index in enumerate(preference)}
    candidates = sorted(trained_set, key=lambda i: (order.get(i, len(order)), i))
    notes = np.asarray(pitches, dtype=np.float64)
    if notes.size == 0:
        return vocabulary[candidates[0]]
    best = max(
        candidates, key=lambda i: (*_register_fit(vocabulary[i], notes), -candidates.index(i))
    )
    return vocabulary[best]


def prepare_score(score_or_path: ScoreLike, model: RenderModel) -> PreparedScore:
    """Read a score and assign each melodic track to a slot the model learned.

    Raises
    ------
    InputFileNotFoundError, MidiReadError, EmptyScoreError
        A missing or unreadable file, or no playable pitched note.
    """
    vocabulary = model.vocabulary
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        score = as_score(score_or_path)
        melodic = melodic_instruments(score)
    positions = {id(inst): index for index, inst in enumerate(score.instruments)}
    replay = [(w.category, str(w.message)) for w in caught]
    tracks: list[tuple[int, pretty_midi.Instrument]] = []
    n_unplayable, end_s = 0, 0.0
    for inst in melodic:
        notes = [note for note in inst.notes if _playable(note)]
        n_unplayable += len(inst.notes) - len(notes)
        if not notes:
            continue
        slot = vocabulary.slot_for_program(inst.program)
        if slot.index not in model.trained_slots:
            substitute = substitute_slot(
                slot, [n.pitch for n in notes], model.trained_slots, vocabulary
            )
            replay.append(
                (
                    RenderWarning,
                    f"{track_label(inst, positions.get(id(inst)))} is played by the "
                    f"{slot.name} slot, which this model never learned: rendering it "
                    f"as {substitute.name} instead (nearest trained slot by register "
                    "and family)",
                )
            )
            slot = substitute
        track = pretty_midi.Instrument(program=slot.program, is_drum=False, name=inst.name)
        track.notes = notes
        tracks.append((slot.index, track))
        end_s = max(end_s, max(note.end for note in notes))
    if n_unplayable:
        replay.append(
            (
                ScoreRepairWarning,
                f"left out {n_unplayable} notes that cannot be played (no duration, a start "
                "before 0 s, or pitch or velocity outside MIDI's range)",
            )
        )
    source = score_or_path if isinstance(score_or_path, (str, Path)) else None
    if not tracks:
        raise EmptyScoreError("holds no playable pitched notes", source)
    for category, message in replay:
        warnings.warn(message, category, stacklevel=3)
        messages.append(message)
    return PreparedScore(tracks, end_s, messages)


# ----------------------------------------------------------------------------- streamed roll
class StreamingRoll:
    """The score's pianoroll, rasterised on demand for any stretch of frames.

    ``roll.frames(a, b)`` equals ``score_to_pianoroll(score, fr, mode="velocity",
    onsets=True, n_frames=N)[..., a:b]`` for any N >= b (same values, same onsets, same
    re-strike gaps), but costs memory for ``b - a`` frames only: the notes sounding in
    ``[a, b]`` are shifted by ``-a / fr`` seconds and rasterised by
    :func:`~orchestrion.symbolic.score_to_pianoroll` itself; a note begun before frame
    ``a`` keeps no onset there, and one look-ahead frame lets a re-strike at ``b`` cut
    frame ``b - 1`` as it does in the whole roll.

    Parameters
    ----------
    tracks : list of (slot index, pretty_midi.Instrument)
        Melodic tracks (see :class:`PreparedScore`); notes must be playable.
    frame_rate_hz : float
    vocabulary : InstrumentVocabulary
    """

    def __init__(
        self,
        tracks: Sequence[tuple[int, pretty_midi.Instrument]],
        frame_rate_hz: float,
        vocabulary: InstrumentVocabulary,
    ) -> None:
        self.frame_rate_hz = float(frame_rate_hz)
        self.vocabulary = vocabulary
        self.n_slots = len(vocabulary)
        self._tracks = []
        for slot, inst in tracks:
            notes = list(inst.notes)
            starts = np.array([n.start for n in notes], dtype=np.float64)
            ends = np.array([n.end for n in notes], dtype=np.float64)
            on = time_to_frame(starts, self.frame_rate_hz)
            off = time_to_frame(ends, self.frame_rate_hz)
            short = off <= on  # a note holding no frame start takes the frame it starts in
            on[short] = np.maximum(off[short] - 1, 0)
            off[short] = on[short] + 1
            self._tracks.append((slot, inst.program, notes, on, off))

    def frames(self, first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(roll, onsets), each float32 (slots, 128, stop - first), for frames [first, stop)."""
        if not 0 <= first < stop:
            raise ConfigError(f"frame range must satisfy 0 <= first < stop, got [{first}, {stop})")
        shift_s = first / self.frame_rate_hz
        score = pretty_midi.PrettyMIDI()
        carried: list[tuple[int, int]] = []  # (slot, pitch) of notes begun before `first`
        fresh: set[tuple[int, int]] = set()  # (slot, pitch) with a true onset at `first`
        for slot, program, notes, on, off in self._tracks:
            sounding = np.flatnonzero((on <= stop) & (off > first))
            if sounding.size == 0:
                continue
            inst = pretty_midi.Instrument(program=program)
            for i in sounding:
                note = notes[i]
                if on[i] < first:
                    carried.append((slot, note.pitch))
                elif on[i] == first:
                    fresh.add((slot, note.pitch))
                start = 0.0 if on[i] < first else max(note.start - shift_s, 0.0)
                inst.notes.append(
                    pretty_midi.Note(note.velocity, note.pitch, start, note.end - shift_s)
                )
            score.instruments.append(inst)
        roll, onsets = score_to_pianoroll(
            score,
            self.frame_rate_hz,
            vocabulary=self.vocabulary,
            mode="velocity",
            n_frames=stop - first + 1,
            onsets=True,
            restrike_gap=False,
        )
        for slot, pitch in carried:
            if (slot, pitch) not in fresh:
                onsets[slot, pitch, 0] = 0.0
        cut_restrike_gaps(roll, onsets)
        return roll[..., :-1], onsets[..., :-1]


__all__ = [
    "SUBSTITUTE_PREFERENCES",
    "PreparedScore",
    "RenderWarning",
    "StreamingRoll",
    "prepare_score",
    "substitute_slot",
    "trained_slots_of",
]
