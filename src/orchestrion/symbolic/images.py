"""The 96 x 96 pianoroll image codec of the compose system (SYSTEMS.md §4, seed 003).

Encoding (MIDI -> images)
-------------------------
* Notes are note_on / note_off pairs as pretty_midi reads them: a note_on with velocity 0
  is a note_off, a note_off without an open note is ignored, and every other message
  only moves time on (so removing it changes no note's time). Drum tracks are left out.
* Time is quantised to a grid of 12 steps per beat (quarter note), which holds 16th-note
  triplets. Grid positions come from MIDI ticks (``ticks * 12 / ticks_per_beat``, rounded
  half up), so tempo changes do not move notes off the grid. *Decision*: absolute times
  are rounded, not the delta times between messages as in the source, so rounding errors
  do not pile up along a piece. Notes that round to no length (grace notes) vanish.
* All tracks are overlaid with max into one binary image (velocity is dropped). Row
  ``r`` is pitch ``highest_pitch - r`` (high notes on top); the default window holds the
  96 pitches 12..107 (C0..B7). Notes outside the window are left out (default) or moved
  to the nearest edge row, never wrapped round.
* A re-struck note (starting where the same pitch is still sounding or has just ended)
  keeps a one-step gap: the step before it is cleared, unless that step is itself the
  first step of a note. Re-struck notes of 2 steps (16th-note triplets) thus shrink to one
  pixel, which the decoder drops: the codec cannot carry them.
* The whole piece is cut into 96-step images (2 bars of 4/4); the short tail and empty
  images are dropped.

Decoding (images -> MIDI)
-------------------------
Each image is min-max normalised, thresholded (default 0.55), and the images are laid one
after another in time. A rising edge is a note_on, a falling edge a note_off; one-step
(one-pixel) notes are dropped; velocity 100; tempo 100 BPM, 4/4.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pretty_midi

from orchestrion.errors import ConfigError
from orchestrion.symbolic.midi import ScoreLike, as_score, melodic_instruments
from orchestrion.symbolic.pianoroll import cut_restrike_gaps, note_runs

OutOfWindow = Literal["drop", "clamp"]

DEFAULT_THRESHOLD = 0.55
"""Decoding threshold on min-max normalised images (the source's VAE value)."""
DEFAULT_TEMPO_BPM = 100.0
"""Tempo of decoded scores, beats (quarter notes) per minute."""
DEFAULT_VELOCITY = 100
"""Velocity of decoded notes."""


class PitchWindowWarning(UserWarning):
    """Notes outside the image's pitch window were left out."""


@dataclass(frozen=True)
class ImageGrid:
    """Geometry of the image codec.

    Attributes
    ----------
    steps_per_beat : int
        Time steps (pixels) per beat (quarter note); 12 holds 16th-note triplets.
    width_steps : int
        Image width in steps; 96 steps at 12 per beat = 8 beats = 2 bars of 4/4.
    lowest_pitch : int
        MIDI note of the bottom row.
    n_pitches : int
        Image height in rows, one MIDI pitch each.
    """

    steps_per_beat: int = 12
    width_steps: int = 96
    lowest_pitch: int = 12
    n_pitches: int = 96

    def __post_init__(self) -> None:
        for field in ("steps_per_beat", "width_steps", "n_pitches"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"image grid {field} must be a whole number >= 1, got {value!r}")
        low, high = self.lowest_pitch, self.highest_pitch
        if not isinstance(low, int) or not 0 <= low <= high <= 127:
            raise ConfigError(f"image pitch window {low}..{high} must lie within MIDI notes 0..127")

    @property
    def highest_pitch(self) -> int:
        """MIDI note of the top row (row 0)."""
        return self.lowest_pitch + self.n_pitches - 1

    def row_of_pitch(self, pitch: int | np.ndarray) -> int | np.ndarray:
        """Image row of MIDI `pitch`: ``highest_pitch - pitch``."""
        return self.highest_pitch - pitch

    def pitch_of_row(self, row: int | np.ndarray) -> int | np.ndarray:
        """MIDI pitch of image `row`: ``highest_pitch - row``."""
        return self.highest_pitch - row

    def step_seconds(self, tempo_bpm: float) -> float:
        """Duration of one step in seconds at `tempo_bpm` beats per minute."""
        return 60.0 / (tempo_bpm * self.steps_per_beat)


DEFAULT_GRID = ImageGrid()


def _ticks_to_steps(ticks: np.ndarray, resolution: int, steps_per_beat: int) -> np.ndarray:
    """Round ``ticks * steps_per_beat / resolution`` half up, exactly, in integers."""
    return (2 * ticks * steps_per_beat + resolution) // (2 * resolution)


def score_to_image_roll(
    score: ScoreLike,
    *,
    grid: ImageGrid = DEFAULT_GRID,
    restrike_gap: bool = True,
    out_of_window: OutOfWindow = "drop",
) -> np.ndarray:
    """The whole score as one binary pianoroll image on the codec's step grid.

    Parameters
    ----------
    score : pretty_midi.PrettyMIDI or path
        Score (a path is read with :func:`~orchestrion.symbolic.midi.read_midi`).
    grid : ImageGrid
        Steps per beat and pitch window.
    restrike_gap : bool
        Keep a one-step gap before re-struck notes.
    out_of_window : {"drop", "clamp"}
        Leave out notes outside the pitch window (with a :class:`PitchWindowWarning`
        giving the count), or move them to the top / bottom row.

    Returns
    -------
    np.ndarray of bool, shape (n_pitches, steps)
        Row 0 is `grid.highest_pitch`; column ``s`` is step ``s`` from the start of the
        score; ``steps`` runs to the end of the last note.
    """
    if out_of_window not in ("drop", "clamp"):
        raise ConfigError(f"out_of_window must be 'drop' or 'clamp', got {out_of_window!r}")
    score = as_score(score)
    pitches, start_ticks, end_ticks = [], [], []
    for inst in melodic_instruments(score):
        for note in inst.notes:
            pitches.append(note.pitch)
            start_ticks.append(score.time_to_tick(note.start))
            end_ticks.append(score.time_to_tick(note.end))
    pitches_arr = np.asarray(pitches, dtype=np.int64)
    resolution, steps_per_beat = score.resolution, grid.steps_per_beat
    starts = _ticks_to_steps(np.asarray(start_ticks, dtype=np.int64), resolution, steps_per_beat)
    ends = _ticks_to_steps(np.asarray(end_ticks, dtype=np.int64), resolution, steps_per_beat)

    outside = (pitches_arr < grid.lowest_pitch) | (pitches_arr > grid.highest_pitch)
    if out_of_window == "clamp":
        pitches_arr = np.clip(pitches_arr, grid.lowest_pitch, grid.highest_pitch)
    elif outside.any():
        warnings.warn(
            f"left out {int(outside.sum())} notes outside the image pitch window "
            f"{grid.lowest_pitch}..{grid.highest_pitch} "
            f"({pretty_midi.note_number_to_name(grid.lowest_pitch)}.."
            f"{pretty_midi.note_number_to_name(grid.highest_pitch)})",
            PitchWindowWarning,
            stacklevel=2,
        )
        keep = ~outside
        pitches_arr, starts, ends = pitches_arr[keep], starts[keep], ends[keep]
    sounding = ends > starts  # notes rounded to no length vanish
    rows = grid.row_of_pitch(pitches_arr[sounding])
    starts, ends = starts[sounding], ends[sounding]

    n_steps = int(ends.max(initial=0))
    image = np.zeros((grid.n_pitches, n_steps), dtype=bool)
    onset = np.zeros_like(image)
    for row, first, stop in zip(rows, starts, ends):
        image[row, first:stop] = True
        onset[row, first] = True
    if restrike_gap:
        cut_restrike_gaps(image, onset)
    return image


def split_into_images(
    image_roll: np.ndarray,
    *,
    grid: ImageGrid = DEFAULT_GRID,
    keep_empty: bool = False,
    keep_tail: bool = False,
) -> np.ndarray:
    """Cut a whole-score image into `grid.width_steps`-wide images.

    Parameters
    ----------
    image_roll : np.ndarray of bool, shape (n_pitches, steps)
    grid : ImageGrid
    keep_empty : bool
        Keep images without any note (dropped by default).
    keep_tail : bool
        Keep the last, shorter piece, padded with silence (dropped by default).

    Returns
    -------
    np.ndarray of bool, shape (images, n_pitches, width_steps)
    """
    image_roll = np.asarray(image_roll, dtype=bool)
    width = grid.width_steps
    n_steps = image_roll.shape[-1]
    n_images = n_steps // width + (1 if keep_tail and n_steps % width else 0)
    padded = np.zeros((grid.n_pitches, n_images * width), dtype=bool)
    usable = min(n_steps, n_images * width)
    padded[:, :usable] = image_roll[:, :usable]
    images = padded.reshape(grid.n_pitches, n_images, width).transpose(1, 0, 2)
    if not keep_empty:
        images = images[images.any(axis=(1, 2))]
    return np.ascontiguousarray(images)


def midi_to_images(
    score: ScoreLike,
    *,
    grid: ImageGrid = DEFAULT_GRID,
    restrike_gap: bool = True,
    out_of_window: OutOfWindow = "drop",
    keep_empty: bool = False,
    keep_tail: bool = False,
) -> np.ndarray:
    """Encode a score as binary 96 x 96 pianoroll images (2 bars of 4/4 each).

    Parameters
    ----------
    score : pretty_midi.PrettyMIDI or path
        Score or MIDI file; drum tracks are left out.
    grid : ImageGrid
        Codec geometry; default 12 steps per beat, 96 steps wide, pitches 12..107.
    restrike_gap, out_of_window
        See :func:`score_to_image_roll`.
    keep_empty, keep_tail
        See :func:`split_into_images`.

    Returns
    -------
    np.ndarray of bool, shape (images, n_pitches, width_steps)
        ``images[i, r, s]`` is True when pitch ``grid.highest_pitch - r`` sounds at step
        ``s`` of image ``i``. May hold zero images (a score shorter than 2 bars).
    """
    image_roll = score_to_image_roll(
        score, grid=grid, restrike_gap=restrike_gap, out_of_window=out_of_window
    )
    return split_into_images(image_roll, grid=grid, keep_empty=keep_empty, keep_tail=keep_tail)


def _as_image_stack(images: np.ndarray, grid: ImageGrid) -> np.ndarray:
    array = np.asarray(images)
    if array.ndim == 2:
        array = array[None]
    elif array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3 or array.shape[1] != grid.n_pitches:
        raise ConfigError(
            f"images must have shape (images, {grid.n_pitches}, steps), "
            f"(images, 1, {grid.n_pitches}, steps) or ({grid.n_pitches}, steps);"
            f" got {np.shape(images)}"
        )
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ConfigError("images contain NaN or infinite values")
    return array


def threshold_images(
    images: np.ndarray, threshold: float = DEFAULT_THRESHOLD, *, grid: ImageGrid = DEFAULT_GRID
) -> np.ndarray:
    """Min-max normalise each image to 0..1 and keep the pixels above `threshold`.

    A constant image (max == min) holds no notes.

    Parameters
    ----------
    images : np.ndarray
        Shape (images, n_pitches, steps), (images, 1, n_pitches, steps) or
        (n_pitches, steps). Any real values, e.g. a model's sigmoid or tanh output,
        or a binary image.
    threshold : float
        In [0, 1).

    Returns
    -------
    np.ndarray of bool, shape (images, n_pitches, steps)
    """
    if not 0.0 <= threshold < 1.0:
        raise ConfigError(f"threshold must be in [0, 1), got {threshold!r}")
    stack = _as_image_stack(images, grid)
    low = stack.min(axis=(1, 2), keepdims=True)
    span = stack.max(axis=(1, 2), keepdims=True) - low
    normalised = np.divide(stack - low, span, out=np.zeros_like(stack), where=span > 0)
    return normalised > threshold


def _step_time(step: int, tempo_bpm: float, grid: ImageGrid) -> float:
    """Start of `step` in seconds, in one division so grid times are as exact as floats allow."""
    return (step * 60.0) / (float(tempo_bpm) * grid.steps_per_beat)


def images_to_midi(
    images: np.ndarray,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    tempo_bpm: float = DEFAULT_TEMPO_BPM,
    velocity: int = DEFAULT_VELOCITY,
    program: int = 0,
    grid: ImageGrid = DEFAULT_GRID,
    min_note_steps: int = 2,
) -> pretty_midi.PrettyMIDI:
    """Decode pianoroll images into a one-track score, the images following one another.

    Parameters
    ----------
    images : np.ndarray
        Shape (images, n_pitches, steps), (images, 1, n_pitches, steps) or
        (n_pitches, steps); binary or real-valued images; row 0 is `grid.highest_pitch`.
    threshold : float
        Pixels above it after per-image min-max normalisation sound (VAE: 0.55; GAN
        0.1-0.55 depending on the data).
    tempo_bpm : float
        Tempo of the score, quarter notes per minute; one step lasts
        ``60 / (tempo_bpm * steps_per_beat)`` seconds (0.05 s at 100 BPM).
    velocity : int
        Velocity 1..127 of every note.
    program : int
        GM program of the track (0: acoustic grand piano).
    grid : ImageGrid
        Codec geometry.
    min_note_steps : int
        Shorter notes are dropped; 2 drops one-pixel notes.

    Returns
    -------
    pretty_midi.PrettyMIDI
        One track; times on the step grid (``step * step_seconds``); 4/4 at `tempo_bpm`.
        A note held across the edge between two images stays one note.
    """
    if not (np.isfinite(tempo_bpm) and tempo_bpm > 0):
        raise ConfigError(f"tempo must be a positive number of beats per minute, got {tempo_bpm!r}")
    if not 1 <= int(velocity) <= 127:
        raise ConfigError(f"velocity must be 1..127, got {velocity!r}")
    if not 0 <= int(program) <= 127:
        raise ConfigError(f"GM program must be 0..127, got {program!r}")
    if int(min_note_steps) < 1:
        raise ConfigError(f"min_note_steps must be >= 1, got {min_note_steps!r}")
    sounding = threshold_images(images, threshold, grid=grid)
    if len(sounding):
        piece = np.concatenate(list(sounding), axis=-1)
    else:
        piece = np.zeros((grid.n_pitches, 0), dtype=bool)

    score = pretty_midi.PrettyMIDI(
        resolution=grid.steps_per_beat * 40, initial_tempo=float(tempo_bpm)
    )
    score.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0.0))
    program = int(program)
    track_name = pretty_midi.program_to_instrument_name(program)
    track = pretty_midi.Instrument(program=program, name=track_name)
    for row in np.flatnonzero(piece.any(axis=-1)):
        starts, ends = note_runs(piece[row])
        pitch = int(grid.pitch_of_row(row))
        for first, stop in zip(starts, ends):
            if stop - first < min_note_steps:
                continue
            track.notes.append(
                pretty_midi.Note(
                    velocity=int(velocity),
                    pitch=pitch,
                    start=_step_time(int(first), tempo_bpm, grid),
                    end=_step_time(int(stop), tempo_bpm, grid),
                )
            )
    track.notes.sort(key=lambda note: (note.start, note.pitch))
    score.instruments.append(track)
    return score
