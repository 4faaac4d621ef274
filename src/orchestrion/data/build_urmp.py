"""Build a URMP-format dataset: chamber-ensemble pieces rendered part by part with FluidSynth.

Layout written (the real URMP layout; `orchestrion.data.urmp` reads it)::

    <out>/NN_Piece_codes/                    e.g. 01_Bwv1-6_fl_cl_hn_bn
        AuMix_NN_Piece_codes.wav             the mix = the exact sum of the parts
        AuSep_<k>_<code>_NN_Piece.wav        part k alone (k = 1.. in score order)
        Notes_<k>_<code>_NN_Piece.txt        onset s <tab> frequency Hz <tab> duration s
        F0s_<k>_<code>_NN_Piece.txt          time s <tab> f0 Hz (0 = unvoiced), hop F0_HOP_S
        Sco_NN_Piece_codes.mid               the score as performed (programs, transpositions)
    <out>/splits.json                        {"train": [piece ids], "valid": [...], "test": [...]}
    <out>/manifest.json                      counts, durations, checksums, skipped pieces

Audio is mono 16-bit PCM WAV at `sample_rate` (URMP: 48 kHz). Each piece's parts are
scaled by one common factor so that the mix peaks at `mix_peak` (FluidSynth's own level
leaves a chorale near 0.2 of full scale), then quantised, and the mix is the integer sum
of the quantised parts: ``AuMix == sum(AuSep)`` exactly, in 16-bit integers.

Naming
------
``NN`` is the piece's 1-based position in the source's stable order, zero-padded to 2
digits (3 or more when more than 99 pieces are planned). Pieces the source or builder
skips leave their number unused. ``Piece`` is the source name made safe for URMP file
names (which split on ``_``): runs of anything but letters and digits become ``-``, and
the first letter is capitalised (``bwv66.6`` -> ``Bwv66-6``).

Instruments
-----------
The parts are the score's pitched tracks that hold notes, in score order (drum tracks
are dropped; at most `MAX_PARTS`). Every part gets one of the 13 URMP instruments of the
instrument vocabulary
(`orchestrion.symbolic.instruments`) and is moved by whole octaves into its playable
range: of the shifts that leave the fewest notes outside the range, the smallest one
(then the one that centres the part best); notes still outside are folded by octaves
into the range. The playable range is the instrument's, narrowed to the longest run of
keys the SoundFont has samples for (`sounding_slot`): FluidR3's contrabass is silent
above A3, so a part written for a real double bass up to G4 would otherwise be rendered
partly as silence. Controllers and pitch bends are dropped, so the Notes and F0s files
describe the audio exactly.

* ``ensembles=None`` (balanced draw): a "deck" is dealt, made of one seeded shuffle of
  the 13 instruments after another; piece number i (0-based) is dealt the n cards from
  position 4 i (4 = the parts of a chorale: in a build of 4-part pieces every instrument
  plays equally often, within one, and the first 4 pieces already use all 13). The dealt
  instruments are matched to the parts to minimise notes outside the range, then octave
  shifts; a part that still does not fit any dealt instrument takes the next card further
  on that does fit it.
* ``ensembles=["fl,cl,hn,bn", "vn,vn,va,vc"]``: piece i plays ensemble i mod len; part k
  gets the k-th instrument (a piece with fewer parts uses the first ones; a piece with
  more parts than the ensemble is skipped with a warning).

Split
-----
By piece, from a hash of the seed and the source name of the piece: the first
`test_fraction` of the hash range is test, the next `valid_fraction` valid, the rest
train. The split of a piece depends on nothing else (not on the other pieces, the shard,
the limit or the instruments), so resumed, sharded and extended builds agree, and
`build_midi` with the same seed and fractions puts every piece in the same split. One
exception keeps a small build usable: when the rule leaves test or valid empty in a build
of 3 pieces or more, that split gets the train piece nearest to its range (`write_splits`).
"""

from __future__ import annotations

import copy
import hashlib
import math
import random
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pretty_midi
import soundfile as sf

from orchestrion.data.build import (
    MANIFEST_NAME,
    BuildItem,
    BuildReport,
    ItemResult,
    Shard,
    current_command,
    load_records,
    run_build,
    write_json,
)
from orchestrion.data.render import FluidSynthRenderer, RendererFactory, find_soundfont
from orchestrion.data.scores import (
    DEFAULT_TEMPO_BPM,
    MUSIC21_PREFIX,
    PartCountError,
    ScoreRef,
    check_tempo,
    list_scores,
    load_score,
)
from orchestrion.errors import (
    ConfigError,
    DatasetError,
    EmptyScoreError,
    MidiReadError,
    OrchestrionError,
)
from orchestrion.files import atomic_output
from orchestrion.symbolic.instruments import InstrumentVocabulary, Slot
from orchestrion.symbolic.midi import write_midi

URMP_SAMPLE_RATE = 48_000
"""Sample rate of the real URMP recordings, in Hz (the default here)."""
F0_HOP_S = 256 / 44_100
"""Time between F0s_*.txt frames in seconds, at any sample rate: 256 samples at 44.1 kHz (~5.8 ms)."""
DEFAULT_MIX_PEAK = 0.9
"""Peak of each piece's mix, as a fraction of full scale (0.9 is about -0.9 dBFS)."""
HAND_STRIDE = 4
"""Deck positions between the first cards of consecutive pieces in the balanced draw."""
MAX_OCTAVE_SHIFT = 5
MAX_PARTS = 15
"""Most pitched parts a piece may have: the Sco_*.mid score gives each its own MIDI channel."""
SPLITS_FILE_NAME = "splits.json"
SPLIT_NAMES = ("train", "valid", "test")
SKIPPED_SPLIT = "skipped"
"""`ItemResult.split` of a piece that was skipped (no files); counted under this name in the manifest."""
PCM16_SCALE = 32768.0
"""float <-> 16-bit integer scale (what soundfile uses when it reads PCM_16 as float)."""


class PieceSkippedWarning(UserWarning):
    """A piece was left out: unreadable, empty, or more parts than its ensemble has instruments.

    Pieces a source filters out by part count (music21 pieces outside 2-6 parts) are only
    counted in the manifest, without a warning.
    """


# --------------------------------------------------------------------------- instruments


def urmp_slots(vocabulary: InstrumentVocabulary | None = None) -> tuple[Slot, ...]:
    """The vocabulary's URMP instruments (those with a URMP code), in slot order."""
    vocabulary = vocabulary or InstrumentVocabulary.default()
    return tuple(slot for slot in vocabulary if slot.urmp_code)


def sounding_slot(renderer: FluidSynthRenderer, slot: Slot) -> Slot:
    """`slot` with its range narrowed to the keys the renderer's SoundFont sounds for its program."""
    lowest, highest = renderer.sounding_range(slot.program, slot.lowest_pitch, slot.highest_pitch)
    return replace(slot, lowest_pitch=lowest, highest_pitch=highest)


def resolve_ensemble(text: str, vocabulary: InstrumentVocabulary | None = None) -> tuple[Slot, ...]:
    """Parse one ensemble, a comma list of URMP codes or instrument names, e.g. ``"fl,cl,hn,bn"``.

    Raises
    ------
    ConfigError
        An unknown name, an instrument URMP does not have (e.g. piano), or an empty list.
    """
    vocabulary = vocabulary or InstrumentVocabulary.default()
    tokens = [token.strip() for token in str(text).split(",") if token.strip()]
    if not tokens:
        raise ConfigError(f"ensemble {text!r} names no instruments; write e.g. 'fl,cl,hn,bn'")
    slots = []
    for token in tokens:
        slot = vocabulary.by_name(token)
        if not slot.urmp_code:
            codes = ", ".join(s.urmp_code for s in urmp_slots(vocabulary))
            raise ConfigError(
                f"ensemble {text!r}: {slot.name} is not a URMP instrument; choose from {codes}"
            )
        slots.append(slot)
    return tuple(slots)


@dataclass(frozen=True)
class PartFit:
    """How one part fits one instrument.

    Attributes
    ----------
    shift_semitones : the whole-octave transposition applied to the part (multiple of 12).
    notes_outside : notes still outside the playable range after the shift (to be folded).
    """

    shift_semitones: int
    notes_outside: int


@dataclass(frozen=True)
class PartAssignment:
    """The instrument a part plays and how the part is moved to fit it.

    Attributes
    ----------
    slot : the instrument (its URMP code, GM program and playable range).
    shift_semitones : whole-octave transposition of the whole part.
    notes_folded : notes moved by further octaves into the range after the shift.
    """

    slot: Slot
    shift_semitones: int
    notes_folded: int


def best_octave_shift(pitches: np.ndarray, lowest: int, highest: int) -> PartFit:
    """The whole-octave shift that moves `pitches` (MIDI numbers) best into ``[lowest, highest]``.

    Of the shifts from -5 to +5 octaves that keep every note in MIDI 0..127, take the one
    leaving the fewest notes outside the range, then the smallest, then the one placing
    the part's mean pitch nearest the middle of the range, then the lower one.
    """
    pitches = np.asarray(pitches, dtype=np.int64)
    if pitches.size == 0:
        return PartFit(0, 0)
    centre = (lowest + highest) / 2
    mean = float(pitches.mean())
    best: tuple[Any, ...] | None = None
    for octaves in range(-MAX_OCTAVE_SHIFT, MAX_OCTAVE_SHIFT + 1):
        shifted = pitches + 12 * octaves
        if shifted.min() < 0 or shifted.max() > 127:
            continue
        outside = int(np.count_nonzero((shifted < lowest) | (shifted > highest)))
        key = (outside, abs(octaves), abs(mean + 12 * octaves - centre), octaves)
        if best is None or key < best:
            best = key
    if best is None:  # cannot happen for MIDI pitches: shift 0 always qualifies
        return PartFit(0, int(np.count_nonzero((pitches < lowest) | (pitches > highest))))
    return PartFit(12 * best[3], best[0])


def fold_into_range(pitch: int, lowest: int, highest: int) -> int:
    """Move `pitch` by whole octaves into ``[lowest, highest]`` (clamped if the range is < 1 octave)."""
    if pitch < lowest:
        pitch += 12 * math.ceil((lowest - pitch) / 12)
    elif pitch > highest:
        pitch -= 12 * math.ceil((pitch - highest) / 12)
    return min(max(pitch, lowest), highest)


def _fit(pitches: np.ndarray, slot: Slot) -> PartFit:
    return best_octave_shift(pitches, slot.lowest_pitch, slot.highest_pitch)


def _match(parts: list[np.ndarray], candidates: list[Slot]) -> list[int]:
    """Index into `candidates` for each part: fewest notes outside the ranges, then smallest shifts."""
    from scipy.optimize import linear_sum_assignment  # noqa: PLC0415  (slow import, needed per piece)

    cost = np.zeros((len(parts), len(candidates)))
    for i, pitches in enumerate(parts):
        for j, slot in enumerate(candidates):
            fit = _fit(pitches, slot)
            cost[i, j] = fit.notes_outside * 1000.0 + abs(fit.shift_semitones) / 12 + j * 1e-6
    rows, cols = linear_sum_assignment(cost)
    chosen = [0] * len(parts)
    for row, col in zip(rows, cols):
        chosen[row] = int(col)
    return chosen


def deck_card(position: int, seed: int, slots: tuple[Slot, ...]) -> Slot:
    """The instrument at `position` of the balanced-draw deck: shuffle r = position // len(slots)."""
    shuffle, place = divmod(position, len(slots))
    order = np.random.default_rng([seed, shuffle]).permutation(len(slots))
    return slots[int(order[place])]


def draw_balanced_ensemble(
    parts: list[np.ndarray],
    piece_index: int,
    seed: int = 0,
    slots: tuple[Slot, ...] | None = None,
) -> list[PartAssignment]:
    """Choose a URMP instrument for each part of piece number `piece_index` (0-based).

    Parameters
    ----------
    parts : the MIDI pitches of each part's notes, in part order.
    piece_index : the piece's position in the build (decides where in the deck it is dealt).
    seed : seed of the deck's shuffles.
    slots : the instruments to draw from (default: the 13 URMP instruments).

    Returns
    -------
    One assignment per part, in part order. See the module docstring for the rule.
    """
    slots = slots or urmp_slots()
    if piece_index < 0:
        raise ConfigError(f"piece index must be >= 0, got {piece_index}")
    start = piece_index * HAND_STRIDE
    hand = [deck_card(start + i, seed, slots) for i in range(len(parts))]
    chosen = [hand[j] for j in _match(parts, hand)]
    # A part that fits none of the dealt instruments takes the next card that fits it.
    extra = [deck_card(start + len(parts) + i, seed, slots) for i in range(len(slots))]
    for k, pitches in enumerate(parts):
        if _fit(pitches, chosen[k]).notes_outside == 0:
            continue
        replacement = next((slot for slot in extra if _fit(pitches, slot).notes_outside == 0), None)
        if replacement is not None:
            chosen[k] = replacement
    return [_assignment(pitches, slot) for pitches, slot in zip(parts, chosen)]


def assign_ensemble(parts: list[np.ndarray], ensemble: tuple[Slot, ...]) -> list[PartAssignment]:
    """Give part k the k-th instrument of `ensemble`, each moved into range by octaves.

    Raises
    ------
    PartCountError
        If the piece has more parts than the ensemble has instruments.
    """
    if len(parts) > len(ensemble):
        codes = ",".join(slot.urmp_code or slot.name for slot in ensemble)
        raise PartCountError(
            f"has {len(parts)} parts but the ensemble {codes} has only {len(ensemble)} instruments"
        )
    return [_assignment(pitches, slot) for pitches, slot in zip(parts, ensemble)]


def _assignment(pitches: np.ndarray, slot: Slot) -> PartAssignment:
    fit = _fit(pitches, slot)
    return PartAssignment(slot, fit.shift_semitones, fit.notes_outside)


def dynamics_curve(seed: str, duration_s: float) -> Callable[[float], int]:
    """A seeded dynamic plan for one part: a base level (pp..ff) with slow swells.

    Returns velocity(t): base in 35-120, plus a sum of two slow sinusoids (periods 4-16 s,
    together at most +-18), clipped to 20-127. Scores from corpora often carry one
    velocity throughout (music21's chorales: 90); varied dynamics let a render model
    learn how loud a velocity is.
    """
    rng = random.Random(seed)
    base = rng.uniform(35.0, 120.0)
    swells = [(rng.uniform(4.0, 16.0), rng.uniform(0.0, 2 * math.pi), rng.uniform(3.0, 9.0)) for _ in range(2)]

    def velocity(time_s: float) -> int:
        value = base + sum(a * math.sin(2 * math.pi * time_s / period + phase) for period, phase, a in swells)
        return int(round(min(127.0, max(20.0, value))))

    return velocity


def perform_parts(
    parts: list[pretty_midi.Instrument],
    assignments: list[PartAssignment],
    dynamics_seed: str | None = None,
) -> list[pretty_midi.Instrument]:
    """The parts as played: each with its instrument's GM program and name, shifted and folded.

    Notes keep their times; controllers and pitch bends are dropped. Velocities are kept,
    or, with `dynamics_seed`, replaced by each part's seeded `dynamics_curve`.
    """
    performed = []
    for k, (part, assignment) in enumerate(zip(parts, assignments)):
        slot = assignment.slot
        inst = pretty_midi.Instrument(program=slot.program, name=slot.name)
        curve = None if dynamics_seed is None else dynamics_curve(f"{dynamics_seed}:{k}", part.get_end_time())
        for note in sorted(part.notes, key=lambda n: (n.start, n.pitch)):
            pitch = note.pitch + assignment.shift_semitones
            pitch = fold_into_range(pitch, slot.lowest_pitch, slot.highest_pitch)
            velocity = note.velocity if curve is None else curve(note.start)
            inst.notes.append(pretty_midi.Note(velocity, pitch, note.start, note.end))
        performed.append(inst)
    return performed


# --------------------------------------------------------------------------- names, splits, text files


def piece_name(name: str) -> str:
    """A URMP-safe piece name (no ``_``): ``bwv66.6`` -> ``Bwv66-6``, ``sub/my song`` -> ``Sub-my-song``."""
    spaced = "".join(c if c.isascii() and c.isalnum() else " " for c in name)
    safe = "-".join(spaced.split())
    return (safe[:1].upper() + safe[1:]) if safe else "Piece"


def number_digits(n_pieces: int) -> int:
    """Digits of the zero-padded piece number NN: 2, or more when more than 99 pieces are planned."""
    return max(2, len(str(max(n_pieces, 1))))


def split_position(name: str, seed: int) -> float:
    """Where the piece named `name` falls in [0, 1): test below the test fraction, then valid."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of_piece(name: str, seed: int, valid_fraction: float = 0.1, test_fraction: float = 0.1) -> str:
    """``"train"``, ``"valid"`` or ``"test"`` for the piece named `name` (see the module docstring)."""
    position = split_position(name, seed)
    if position < test_fraction:
        return "test"
    if position < test_fraction + valid_fraction:
        return "valid"
    return "train"


def check_fractions(valid_fraction: float, test_fraction: float) -> None:
    """Raise ConfigError unless both fractions are in [0, 1] and sum to at most 1."""
    for label, value in (("valid", valid_fraction), ("test", test_fraction)):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"the {label} fraction must be between 0 and 1, got {value}")
    if valid_fraction + test_fraction > 1.0:
        raise ConfigError(f"valid + test fractions exceed 1 ({valid_fraction} + {test_fraction})")


def midi_to_hz(pitch: int | np.ndarray) -> float | np.ndarray:
    """Equal-tempered frequency in Hz of MIDI note `pitch` (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)


def notes_text(part: pretty_midi.Instrument) -> str:
    """URMP Notes file text: one note per line, ``onset_s<TAB>frequency_hz<TAB>duration_s``, by onset."""
    lines = [
        f"{note.start:.7f}\t{float(midi_to_hz(note.pitch)):.3f}\t{note.end - note.start:.7f}"
        for note in sorted(part.notes, key=lambda n: (n.start, n.pitch))
    ]
    return "\n".join(lines) + "\n"


def f0_track(
    part: pretty_midi.Instrument, duration_s: float, hop_s: float = F0_HOP_S
) -> tuple[np.ndarray, np.ndarray]:
    """The part's pitch track on frames ``t = j * hop_s`` covering ``[0, duration_s]``.

    A frame takes the frequency (Hz) of the note sounding at its time (start <= t < end);
    where notes overlap, the latest onset wins, then the higher pitch; 0 where none sounds.

    Returns
    -------
    times_s : float64 (frames,); f0_hz : float64 (frames,).
    """
    n_frames = int(math.floor(duration_s / hop_s + 1e-9)) + 1
    times = np.arange(n_frames, dtype=np.float64) * hop_s
    f0 = np.zeros(n_frames, dtype=np.float64)
    for note in sorted(part.notes, key=lambda n: (n.start, n.pitch)):
        first, last = np.searchsorted(times, [note.start, note.end], side="left")
        f0[first:last] = float(midi_to_hz(note.pitch))
    return times, f0


def f0_text(times_s: np.ndarray, f0_hz: np.ndarray) -> str:
    """URMP F0s file text: ``time_s<TAB>f0_hz`` per frame."""
    return "".join(f"{t:.7f}\t{f:.3f}\n" for t, f in zip(times_s, f0_hz))


def _write_text(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _write_pcm16(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write int16 samples as a mono 16-bit PCM WAV, atomically and without any float conversion."""
    with atomic_output(path) as tmp:
        sf.write(str(tmp), samples.astype(np.int16), int(sample_rate), subtype="PCM_16", format="WAV")


def quantise_parts(
    stems: list[np.ndarray], mix_peak: float | None
) -> tuple[list[np.ndarray], np.ndarray]:
    """Scale float stems by one factor, quantise to 16 bits, and sum them into the mix.

    Parameters
    ----------
    stems : float32 (samples,) each, all the same length.
    mix_peak : the peak of the float mix after scaling, as a fraction of full scale;
        None keeps the renderer's level (only scaled down if the mix would clip).

    Returns
    -------
    (parts, mix) as int16 arrays with ``mix == sum(parts)`` exactly.
    """
    float_mix = np.sum(stems, axis=0, dtype=np.float64)
    peak = float(np.abs(float_mix).max(initial=0.0))
    limit = 0.99
    target = limit if mix_peak is None else min(float(mix_peak), limit)
    scale = 1.0
    if peak > 0 and (mix_peak is not None or peak > limit):
        scale = target / peak
    parts = [
        np.clip(np.round(stem.astype(np.float64) * (scale * PCM16_SCALE)), -32768, 32767).astype(np.int16)
        for stem in stems
    ]
    mix = np.sum([p.astype(np.int32) for p in parts], axis=0)
    if mix.min(initial=0) < -32768 or mix.max(initial=0) > 32767:  # cannot happen below 0.99; never clip
        raise DatasetError("the mix of the quantised parts overflows 16 bits")
    return parts, mix.astype(np.int16)


# --------------------------------------------------------------------------- the worker


def _skip_reason(exc: OrchestrionError) -> str:
    if isinstance(exc, PartCountError):
        return "part_count"
    if isinstance(exc, EmptyScoreError):
        return "empty"
    if isinstance(exc, MidiReadError):
        return "unreadable"
    return "invalid"


def _skipped(item: BuildItem, kind: str, message: str, warn: bool = True) -> ItemResult:
    name = item.params["ref"]["name"]
    if warn:
        warnings.warn(f"skipped piece {name}: {message}", PieceSkippedWarning, stacklevel=1)
    return ItemResult(item.key, [], split=SKIPPED_SPLIT,
                      extra={"name": name, "skipped": kind, "reason": message})


def render_piece(renderer: FluidSynthRenderer, out_dir: Path, item: BuildItem) -> ItemResult:
    """Render and write one piece (the build's worker function)."""
    params = item.params
    ref = ScoreRef(**params["ref"])
    try:
        score = load_score(ref, tempo_bpm=params["tempo_bpm"])
    except OrchestrionError as exc:  # a source's part-count filter is routine: counted, not warned
        return _skipped(item, _skip_reason(exc), str(exc), warn=not isinstance(exc, PartCountError))
    parts = [inst for inst in score.midi.instruments if not inst.is_drum and inst.notes]
    n_drum_tracks = sum(1 for inst in score.midi.instruments if inst.is_drum and inst.notes)
    if not parts:
        return _skipped(item, "empty", f"{ref.path}: holds no pitched notes")
    if len(parts) > MAX_PARTS:
        message = f"{ref.path}: has {len(parts)} pitched parts; a MIDI score holds at most {MAX_PARTS}"
        return _skipped(item, "part_count", message)
    pitches = [np.array([note.pitch for note in part.notes], dtype=np.int64) for part in parts]
    vocabulary = InstrumentVocabulary.default()
    try:
        if params["ensemble"] is None:
            slots = tuple(sounding_slot(renderer, slot) for slot in urmp_slots(vocabulary))
            assignments = draw_balanced_ensemble(pitches, params["index"], params["seed"], slots)
        else:
            ensemble = tuple(sounding_slot(renderer, vocabulary.by_name(code))
                             for code in params["ensemble"])
            assignments = assign_ensemble(pitches, ensemble)
    except PartCountError as exc:
        return _skipped(item, "part_count", f"{ref.path}: {exc}")

    performed = copy.deepcopy(score.midi)
    dynamics_seed = f"{params['seed']}:{ref.name}" if params.get("dynamics") else None
    performed.instruments = perform_parts(parts, assignments, dynamics_seed)
    stems = renderer.render_stems(performed)
    sample_rate = renderer.sample_rate
    part_audio, mix = quantise_parts(stems, params["mix_peak"])
    duration_s = len(mix) / sample_rate

    number, name = item.key.split("_", 1)
    codes = [a.slot.urmp_code for a in assignments]
    piece_id = "_".join([number, name, *codes])
    folder = out_dir / piece_id
    files = [f"{piece_id}/AuMix_{piece_id}.wav", f"{piece_id}/Sco_{piece_id}.mid"]
    _write_pcm16(out_dir / files[0], mix, sample_rate)
    write_midi(performed, out_dir / files[1])
    for k, (code, part, audio) in enumerate(zip(codes, performed.instruments, part_audio), start=1):
        stem = f"{k}_{code}_{number}_{name}"
        _write_pcm16(folder / f"AuSep_{stem}.wav", audio, sample_rate)
        _write_text(folder / f"Notes_{stem}.txt", notes_text(part))
        _write_text(folder / f"F0s_{stem}.txt", f0_text(*f0_track(part, duration_s)))
        files += [f"{piece_id}/{kind}_{stem}.{suffix}"
                  for kind, suffix in (("AuSep", "wav"), ("Notes", "txt"), ("F0s", "txt"))]
    split = split_of_piece(ref.name, params["seed"], params["valid_fraction"], params["test_fraction"])
    extra = {
        "name": ref.name,
        "piece_id": piece_id,
        "instruments": codes,
        "octave_shifts": [a.shift_semitones // 12 for a in assignments],
        "notes_folded": [a.notes_folded for a in assignments],
        "notes": [len(part.notes) for part in performed.instruments],
        "drum_tracks_dropped": n_drum_tracks,
    }
    return ItemResult(item.key, files, duration_s=duration_s, split=split, extra=extra)


# --------------------------------------------------------------------------- the build


def resolve_ensembles(ensembles: list[str] | str | None) -> list[list[str]] | None:
    """Each ensemble as a list of URMP codes (None stays None: the balanced draw)."""
    if ensembles is None:
        return None
    if isinstance(ensembles, str):
        ensembles = [ensembles]
    vocabulary = InstrumentVocabulary.default()
    resolved = [
        [str(slot.urmp_code) for slot in resolve_ensemble(text, vocabulary)] for text in ensembles
    ]
    if not resolved:
        raise ConfigError("the list of ensembles is empty; give at least one, e.g. 'fl,cl,hn,bn'")
    return resolved


def plan_urmp_items(
    scores: str,
    ensembles: list[list[str]] | None,
    limit: int | None,
    seed: int,
    valid_fraction: float,
    test_fraction: float,
    tempo_bpm: float,
    mix_peak: float | None,
    dynamics: bool = False,
) -> list[BuildItem]:
    """One item per listed score, in the source's stable order (nothing is parsed here).

    `ensembles` are lists of URMP codes (see `resolve_ensembles`), or None.
    """
    refs = list_scores(scores, limit)
    digits = number_digits(len(refs))
    items = []
    for index, ref in enumerate(refs):
        key = f"{index + 1:0{digits}d}_{piece_name(ref.name)}"
        items.append(BuildItem(key, {
            "ref": asdict(ref),
            "index": index,
            "ensemble": None if ensembles is None else ensembles[index % len(ensembles)],
            "seed": seed,
            "valid_fraction": valid_fraction,
            "test_fraction": test_fraction,
            "tempo_bpm": tempo_bpm,
            "mix_peak": mix_peak,
            "dynamics": dynamics,
        }))
    return items


MIN_PIECES_TO_HOLD_OUT = 3
"""A build of this many pieces or more has at least one in valid and one in test."""


def write_splits(out_dir: Path, seed: int = 0, valid_fraction: float = 0.1,
                 test_fraction: float = 0.1) -> tuple[dict[str, list[str]], str]:
    """Write ``splits.json`` from the finished pieces' records; return it and a note on
    held-out splits left empty ("" when none is).

    A small build whose hash rule leaves test (then valid) empty lends it the train piece
    nearest to that split's range (a build of 6 pieces would otherwise train on all six);
    a split whose fraction is 0 stays empty, and so do both below 3 pieces (the note says why).
    """
    built = [r for r in load_records(out_dir) if r["files"] and r["split"] in SPLIT_NAMES]
    splits: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    for record in built:
        splits[record["split"]].append(record["extra"]["piece_id"])
    positions = {r["extra"]["piece_id"]: split_position(r["extra"]["name"], seed) for r in built}
    empty = []
    for held_out, fraction in (("test", test_fraction), ("valid", valid_fraction)):
        if splits[held_out] or fraction <= 0:
            continue
        if len(built) < MIN_PIECES_TO_HOLD_OUT:
            empty.append(held_out)
            continue
        lent = min(splits["train"], key=positions.__getitem__)
        splits["train"].remove(lent)
        splits[held_out].append(lent)
    splits = {name: sorted(ids) for name, ids in splits.items()}
    write_json(out_dir / SPLITS_FILE_NAME, splits)
    note = (f"{' and '.join(empty)} empty: only {len(built)} piece{'s' if len(built) != 1 else ''} built, "
            f"a build needs {MIN_PIECES_TO_HOLD_OUT} for one piece each in train, valid and test"
            if empty else "")
    return splits, note


def skipped_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Manifest fields for the pieces left out: counts by reason, and each piece with its reason."""
    counts: Counter[str] = Counter()
    pieces = []
    for record in records:
        extra = record["extra"]
        if "skipped" in extra:
            counts[extra["skipped"]] += 1
            pieces.append({"name": extra["name"], "why": extra["skipped"], "reason": extra["reason"]})
    return {"pieces_skipped": dict(sorted(counts.items())), "skipped_pieces": pieces}


def summarise_build(out_dir: Path, manifest: dict[str, Any], splits: dict[str, list[str]],
                    held_out_note: str = "") -> dict[str, Any]:
    """Add what the shared manifest lacks (skipped pieces, parts per instrument, the pieces
    per split of ``splits.json``) and rewrite it."""
    records = load_records(out_dir)
    parts_per_instrument: Counter[str] = Counter()
    folded = 0
    for record in records:
        if record["files"]:
            parts_per_instrument.update(record["extra"]["instruments"])
            folded += sum(record["extra"]["notes_folded"])
    manifest = {
        **manifest,
        **skipped_summary(records),
        "parts_per_instrument": dict(sorted(parts_per_instrument.items())),
        "notes_folded": folded,
        "splits": {**manifest["splits"], **{name: len(ids) for name, ids in splits.items()}},
        **({"held_out_note": held_out_note} if held_out_note else {}),
    }
    write_json(out_dir / MANIFEST_NAME, manifest)
    return manifest


def build_urmp(
    out_dir: str | Path,
    scores: str = f"{MUSIC21_PREFIX}bach",
    ensembles: list[str] | None = None,
    sample_rate: int = URMP_SAMPLE_RATE,
    limit: int | None = None,
    workers: int = 1,
    shard: str | Shard = "0/1",
    seed: int = 0,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    soundfont: str | Path | None = None,
    progress: bool = True,
    tempo_bpm: float = DEFAULT_TEMPO_BPM,
    mix_peak: float | None = DEFAULT_MIX_PEAK,
    dynamics: bool = False,
) -> BuildReport:
    """Render scores into a URMP-format dataset (resuming a previous run in `out_dir`).

    Parameters
    ----------
    out_dir : output folder; the piece folders, ``splits.json`` and ``manifest.json`` go in it.
    scores : ``"music21:bach"`` (music21's chorales) or a folder of MIDI files.
    ensembles : None for the balanced draw over all 13 URMP instruments, or ensembles as
        comma lists of URMP codes or names (``["fl,cl,hn,bn", "vn,vn,va,vc"]``), used by
        the pieces in turn.
    sample_rate : audio rate in Hz (URMP: 48,000).
    limit : build only the first `limit` scores of the source (skipped ones included).
    workers : worker processes.
    shard : ``"k/N"``: build only every N-th piece starting at k (see `Shard`).
    seed : seed of the instrument draw and of the split.
    valid_fraction, test_fraction : expected share of pieces in valid and test.
    soundfont : .sf2/.sf3 file (default: FluidR3_GM).
    progress : show a progress bar.
    tempo_bpm : tempo of music21 scores, quarter notes per minute (MIDI files keep theirs).
    mix_peak : peak of each piece's mix as a fraction of full scale (None: FluidSynth's level).
    dynamics : replace the scores' velocities by seeded per-part dynamics (`dynamics_curve`),
        so a model trained on the build sees many loudness levels (chorales have one).

    Returns
    -------
    BuildReport; its manifest also counts skipped pieces (`pieces_skipped`) and parts per
    instrument (`parts_per_instrument`).
    """
    out_dir = Path(out_dir)
    shard = shard if isinstance(shard, Shard) else Shard.parse(shard)
    if not 4000 <= int(sample_rate) <= 192000:
        raise ConfigError(f"sample rate {sample_rate} Hz is outside 4000-192000 Hz")
    check_fractions(valid_fraction, test_fraction)
    check_tempo(tempo_bpm)
    if mix_peak is not None and not 0 < mix_peak < 1:
        raise ConfigError(f"mix peak must be between 0 and 1 (a fraction of full scale), got {mix_peak}")
    soundfont_path = find_soundfont(soundfont)
    resolved = resolve_ensembles(ensembles)
    items = plan_urmp_items(str(scores), resolved, limit, seed, valid_fraction, test_fraction,
                            float(tempo_bpm), mix_peak, dynamics)
    config = {
        "scores": str(scores),
        "ensembles": None if resolved is None else [",".join(codes) for codes in resolved],
        "sample_rate": int(sample_rate),
        "limit": limit,
        "seed": seed,
        "valid_fraction": valid_fraction,
        "test_fraction": test_fraction,
        "tempo_bpm": float(tempo_bpm),
        "mix_peak": mix_peak,
        "dynamics": dynamics,
        "soundfont": soundfont_path.name,
        "f0_hop_s": F0_HOP_S,
        # NN's width is part of every name: a build of > 99 pieces cannot extend one of <= 99
        "number_digits": number_digits(len(items)),
        "command": current_command(),
    }
    report = run_build(out_dir, "urmp", items, render_piece, config,
                       setup=RendererFactory(str(soundfont_path), int(sample_rate)),
                       workers=workers, shard=shard, progress=progress)
    splits, held_out_note = write_splits(out_dir, seed, valid_fraction, test_fraction)
    report.manifest = summarise_build(out_dir, report.manifest, splits, held_out_note)
    return report
