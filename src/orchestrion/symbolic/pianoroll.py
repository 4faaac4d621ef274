"""Multi-track pianorolls at any frame rate, one channel per instrument slot (render system).

A roll has shape ``(slots, 128, frames)``: slot channels in vocabulary order
(:class:`~orchestrion.symbolic.instruments.InstrumentVocabulary`), MIDI pitches 0..127,
and frames at ``frame_rate_hz``.

Frame convention
----------------
Frame ``k`` covers the time span ``[k / frame_rate_hz, (k + 1) / frame_rate_hz)`` and is
on when the note sounds at the frame's start time ``k / frame_rate_hz``. A note sounding
over ``[start, end)`` seconds therefore occupies frames ``ceil(start * fr)`` up to
``ceil(end * fr) - 1`` (times within 1e-6 frame of a boundary count as on it). Decoding
puts a note that occupies frames ``[a, b)`` at ``a / fr .. b / fr`` seconds, so onsets and
offsets come back up to one frame late, never early. A note too short to contain any
frame start takes the one frame it starts in (its onset comes back up to one frame early).

This is the alignment of a centred STFT: roll frame ``k`` describes the instant at the
centre of STFT frame ``k`` (``k * hop_length / sample_rate`` seconds).

Re-struck notes
---------------
A note that starts on the frame where the same pitch in the same slot is still sounding
(or has just ended) would merge with it in the roll. Two mechanisms keep them apart:

* ``restrike_gap=True`` (default) clears the frame just before the re-strike, so the roll
  alone shows a one-frame gap, which is what a model that sees only the roll needs. The
  earlier note then decodes up to one frame early. If that earlier note lasts only one
  frame the gap is not cut (it would erase the note); only the onset roll separates them.
* ``onsets=True`` also returns an onset roll (1 at the first frame of every note); pass
  it to :func:`pianoroll_to_score` to split notes at every onset.

Tracks that map to the same slot are merged with ``max``: a slot is one instrument, so
two tracks sounding the same pitch at once become one note.
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import numpy as np
import pretty_midi

from orchestrion.errors import ConfigError
from orchestrion.symbolic.instruments import InstrumentVocabulary
from orchestrion.symbolic.midi import ScoreLike, ScoreRepairWarning, as_score, melodic_instruments

RollMode = Literal["binary", "velocity"]
N_PITCHES = 128
"""MIDI pitches 0..127: the pitch axis of every roll."""

_BOUNDARY_TOLERANCE_FRAMES = 1e-6
_OUTPUT_RESOLUTION = 960
"""Ticks per beat of decoded scores (fine enough that written files keep frame times)."""


def _check_frame_rate(frame_rate_hz: float) -> float:
    is_number = isinstance(frame_rate_hz, (int, float, np.number))
    is_number = is_number and not isinstance(frame_rate_hz, bool)
    if not (is_number and math.isfinite(frame_rate_hz) and frame_rate_hz > 0):
        raise ConfigError(
            f"frame rate must be a positive number of frames per second (Hz), got {frame_rate_hz!r}"
        )
    return float(frame_rate_hz)


def _check_mode(mode: str) -> None:
    if mode not in ("binary", "velocity"):
        raise ConfigError(f"pianoroll mode must be 'binary' or 'velocity', got {mode!r}")


def time_to_frame(times_s: np.ndarray | float, frame_rate_hz: float) -> np.ndarray:
    """First frame whose start time is at or after each time: ``ceil(t * fr)`` (see module notes).

    Parameters
    ----------
    times_s : float or array
        Times in seconds.
    frame_rate_hz : float
        Frames per second.

    Returns
    -------
    np.ndarray of int64, same shape as `times_s`.
    """
    scaled = np.asarray(times_s, dtype=np.float64) * frame_rate_hz
    return np.ceil(scaled - _BOUNDARY_TOLERANCE_FRAMES).astype(np.int64)


def frame_to_time(frames: np.ndarray | int, frame_rate_hz: float) -> np.ndarray:
    """Start time in seconds of each frame: ``k / fr``."""
    return np.asarray(frames, dtype=np.float64) / frame_rate_hz


def score_to_pianoroll(
    score: ScoreLike,
    frame_rate_hz: float,
    *,
    vocabulary: InstrumentVocabulary | None = None,
    mode: RollMode = "binary",
    n_frames: int | None = None,
    onsets: bool = False,
    restrike_gap: bool = True,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Render a score as a multi-track pianoroll, one channel per instrument slot.

    Parameters
    ----------
    score : pretty_midi.PrettyMIDI or path
        The score (a path is read with :func:`~orchestrion.symbolic.midi.read_midi`).
        Drum tracks are left out with a ``DrumTrackWarning``.
    frame_rate_hz : float
        Frames per second, e.g. ``sample_rate / hop_length`` of the target spectrogram.
    vocabulary : InstrumentVocabulary, optional
        Slot table; default :meth:`InstrumentVocabulary.default` (16 slots).
    mode : {"binary", "velocity"}
        ``"binary"``: 1.0 where a note sounds. ``"velocity"``: ``velocity / 127``.
    n_frames : int, optional
        Length of the roll; notes beyond it are cut. Default: up to the end of the last
        note (``ceil(end * fr)`` frames).
    onsets : bool
        Also return the onset roll: 1.0 at the first frame of every note.
    restrike_gap : bool
        Leave a one-frame gap before a re-struck note (see module notes).

    Returns
    -------
    roll : np.ndarray, float32, shape (slots, 128, frames)
    onset_roll : np.ndarray, float32, shape (slots, 128, frames)
        Only if `onsets` is True.
    """
    frame_rate_hz = _check_frame_rate(frame_rate_hz)
    _check_mode(mode)
    if n_frames is not None and (int(n_frames) != n_frames or n_frames < 0):
        raise ConfigError(f"n_frames must be a whole number of frames >= 0, got {n_frames!r}")
    vocabulary = vocabulary or InstrumentVocabulary.default()
    score = as_score(score)

    slot_ids, pitches, starts, ends, velocities = [], [], [], [], []
    n_invalid = 0
    for inst in melodic_instruments(score):
        slot = vocabulary.slot_for_program(inst.program)
        for note in inst.notes:
            playable = 0 <= note.start < note.end and 0 <= note.pitch < N_PITCHES
            if not (playable and 1 <= note.velocity <= 127):
                n_invalid += 1
                continue
            slot_ids.append(slot.index)
            pitches.append(note.pitch)
            starts.append(note.start)
            ends.append(note.end)
            velocities.append(note.velocity)
    if n_invalid:
        warnings.warn(
            f"left out {n_invalid} notes that cannot be played (no duration, a start before 0 s,"
            " or pitch or velocity outside MIDI's range)",
            ScoreRepairWarning,
            stacklevel=2,
        )

    on = time_to_frame(np.asarray(starts, dtype=np.float64), frame_rate_hz)
    off = time_to_frame(np.asarray(ends, dtype=np.float64), frame_rate_hz)
    # A note that contains no frame start takes the frame it starts in.
    short = off <= on
    on[short] = np.maximum(off[short] - 1, 0)
    off[short] = on[short] + 1
    total = int(off.max(initial=0)) if n_frames is None else int(n_frames)

    roll = np.zeros((len(vocabulary), N_PITCHES, total), dtype=np.float32)
    onset_roll = np.zeros_like(roll)
    values = (
        np.ones(len(on), dtype=np.float32)
        if mode == "binary"
        else np.asarray(velocities, dtype=np.float32) / np.float32(127.0)
    )
    for slot_index, pitch, first, stop, value in zip(slot_ids, pitches, on, off, values):
        if first >= total:
            continue
        stop = min(stop, total)
        lane = roll[slot_index, pitch, first:stop]
        np.maximum(lane, value, out=lane)
        onset_roll[slot_index, pitch, first] = 1.0

    if restrike_gap:
        cut_restrike_gaps(roll, onset_roll)
    return (roll, onset_roll) if onsets else roll


def cut_restrike_gaps(roll: np.ndarray, onset_roll: np.ndarray) -> None:
    """Clear the frame before every onset that continues a sounding note, in place.

    Frames that are themselves onsets are kept, so no note disappears.

    Parameters
    ----------
    roll : np.ndarray, shape (..., frames)
        Activity roll (float or bool), modified in place.
    onset_roll : np.ndarray, same shape
        Non-zero at the first frame of every note.
    """
    if roll.shape[-1] < 2:
        return
    is_onset = onset_roll[..., 1:] > 0
    before_is_sounding = roll[..., :-1] > 0
    before_is_onset = onset_roll[..., :-1] > 0
    cut = is_onset & before_is_sounding & ~before_is_onset
    roll[..., :-1][cut] = 0.0


def note_runs(
    active: np.ndarray, onsets: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Start and (exclusive) end indices of the notes in one lane of a roll.

    A note starts where the lane switches on, or at an onset inside a sounding stretch,
    and ends where the lane switches off or the next onset begins.

    Parameters
    ----------
    active : np.ndarray of bool, shape (frames,)
    onsets : np.ndarray of bool, shape (frames,), optional

    Returns
    -------
    starts, ends : np.ndarray of int64, shape (notes,)
    """
    active = np.asarray(active, dtype=bool)
    n = active.shape[-1]
    onset = np.zeros(n, dtype=bool) if onsets is None else np.asarray(onsets, dtype=bool)
    previous = np.concatenate([[False], active[:-1]])
    start_mask = active & (~previous | onset)
    # end_mask[j] is True when a note stops just before frame j (j = n: end of the lane)
    following = np.concatenate([active[1:], [False]])
    following_onset = np.concatenate([onset[1:], [False]])
    end_mask = active & (~following | following_onset)
    return np.flatnonzero(start_mask), np.flatnonzero(end_mask) + 1


def pianoroll_to_score(
    roll: np.ndarray,
    frame_rate_hz: float,
    *,
    vocabulary: InstrumentVocabulary | None = None,
    mode: RollMode = "binary",
    velocity: int = 100,
    onsets: np.ndarray | None = None,
    threshold: float = 0.0,
) -> pretty_midi.PrettyMIDI:
    """Turn a multi-track pianoroll back into a score.

    Parameters
    ----------
    roll : np.ndarray, shape (slots, 128, frames)
        As made by :func:`score_to_pianoroll` (or predicted by a model).
    frame_rate_hz : float
        Frames per second of `roll`.
    vocabulary : InstrumentVocabulary, optional
        Slot table; default :meth:`InstrumentVocabulary.default`. Its length must equal
        ``roll.shape[0]``.
    mode : {"binary", "velocity"}
        ``"velocity"`` reads each note's velocity from the roll value at its first frame
        (``round(value * 127)``, kept within 1..127); ``"binary"`` gives every note `velocity`.
    velocity : int
        Velocity 1..127 of every note in binary mode.
    onsets : np.ndarray, shape like `roll`, optional
        Onset roll; a note is split wherever it is non-zero (re-strikes without a gap).
    threshold : float
        A frame sounds where the roll value is above `threshold` (default 0: any non-zero
        value). Use e.g. 0.5 for the output of a model with sigmoid outputs.

    Returns
    -------
    pretty_midi.PrettyMIDI
        One track per non-empty slot, named after the slot, with the slot's GM program;
        note times in seconds (``frame / frame_rate_hz``); tempo 120 BPM.
    """
    frame_rate_hz = _check_frame_rate(frame_rate_hz)
    _check_mode(mode)
    if not 1 <= int(velocity) <= 127:
        raise ConfigError(f"velocity must be 1..127, got {velocity!r}")
    vocabulary = vocabulary or InstrumentVocabulary.default()
    roll = np.asarray(roll)
    expected = (len(vocabulary), N_PITCHES)
    if roll.ndim != 3 or roll.shape[:2] != expected:
        raise ConfigError(
            f"pianoroll must have shape (slots={expected[0]}, pitches={expected[1]}, frames),"
            f" got {roll.shape}"
        )
    if onsets is not None:
        onsets = np.asarray(onsets)
        if onsets.shape != roll.shape:
            raise ConfigError(
                f"onset roll shape {onsets.shape} differs from pianoroll shape {roll.shape}"
            )
    active = roll > threshold
    score = pretty_midi.PrettyMIDI(resolution=_OUTPUT_RESOLUTION, initial_tempo=120.0)
    for slot in vocabulary.slots:
        if not active[slot.index].any():
            continue
        track = pretty_midi.Instrument(program=slot.program, name=slot.name)
        for pitch in np.flatnonzero(active[slot.index].any(axis=-1)):
            lane_onsets = None if onsets is None else onsets[slot.index, pitch] > 0
            starts, ends = note_runs(active[slot.index, pitch], lane_onsets)
            for first, stop in zip(starts, ends):
                if mode == "velocity":
                    value = float(roll[slot.index, pitch, first])
                    note_velocity = int(np.clip(np.floor(value * 127.0 + 0.5), 1, 127))
                else:
                    note_velocity = int(velocity)
                track.notes.append(
                    pretty_midi.Note(
                        velocity=note_velocity,
                        pitch=int(pitch),
                        start=float(first) / frame_rate_hz,
                        end=float(stop) / frame_rate_hz,
                    )
                )
        track.notes.sort(key=lambda note: (note.start, note.pitch))
        score.instruments.append(track)
    return score
