"""The instrument judge's training material: score parts rendered by FluidSynth, one stem per slot.

Every piece of a score source (default: the music21 Bach chorales) is parsed once; each of
its parts is played by several of the 16 instrument slots, moved by octaves into the
slot's sounding range as the URMP build moves parts (`assign_ensemble`, `perform_parts`),
and rendered alone with the data engine's renderer. The slots are dealt from one seeded
shuffle per piece, part after part, so a 4-part piece with 4 slots per part plays every
slot exactly once (with more slots per part a slot can recur in another part; the
training draw takes one stem per part and never the same slot twice).

Layout written::

    <out>/<split>/<NNN>_<Piece>.npz   stems (S, samples) int16, slots (S,), parts (S,),
                                      note_starts_s / note_ends_s / note_stems (the notes)
    <out>/manifest.json               the command, the sample rate, pieces per split, slots

The split of a piece is the URMP build's (`split_of_piece`, same seed and fractions), so
the judge never trains on a piece that `data urmp` puts in valid or test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orchestrion.data.build_urmp import assign_ensemble, perform_parts, sounding_slot, split_of_piece
from orchestrion.data.render import FluidSynthRenderer
from orchestrion.data.scores import list_scores, load_score
from orchestrion.errors import ConfigError, OrchestrionError
from orchestrion.files import atomic_output
from orchestrion.symbolic.instruments import InstrumentVocabulary

JUDGE_SAMPLE_RATE = 16_000
STEM_PEAK = 0.9
"""Each piece's stems share one scale that takes the loudest stem to this peak before int16."""


@dataclass(frozen=True)
class JudgeDataConfig:
    """What `build_judge_data` renders: the source, how many slots each part is played by."""

    scores: str = "music21:bach"
    limit: int | None = None
    seed: int = 0
    train_slots_per_part: int = 5
    held_out_slots_per_part: int = 4
    dynamics: bool = True
    soundfont: str | None = None


def piece_slots(seed: int, piece_index: int, n_parts: int, per_part: int, n_slots: int) -> list[list[int]]:
    """Slot indices for each part: consecutive cards of seeded shuffles of the slots."""
    rng = np.random.default_rng([seed, piece_index, 7])
    deck: list[int] = []
    while len(deck) < n_parts * per_part:
        deck += [int(s) for s in rng.permutation(n_slots)]
    hands = [deck[k * per_part:(k + 1) * per_part] for k in range(n_parts)]
    return [list(dict.fromkeys(hand)) for hand in hands]


def render_judge_piece(renderer: FluidSynthRenderer, score, piece_index: int, per_part: int,
                       config: JudgeDataConfig) -> dict[str, np.ndarray]:
    """The stems of one parsed piece (see the module docstring) as arrays ready to save."""
    import pretty_midi  # noqa: PLC0415

    vocabulary = InstrumentVocabulary.default()
    parts = [inst for inst in score.midi.instruments if not inst.is_drum and inst.notes]
    hands = piece_slots(config.seed, piece_index, len(parts), per_part, len(vocabulary))
    performed, slots, part_ids = [], [], []
    for k, (part, hand) in enumerate(zip(parts, hands)):
        pitches = np.array([note.pitch for note in part.notes], dtype=np.int64)
        for slot_index in hand:
            slot = sounding_slot(renderer, vocabulary[slot_index])
            assignment = assign_ensemble([pitches], (slot,))
            seed_text = f"{config.seed}:{score.name}:{k}:{slot_index}" if config.dynamics else None
            performed += perform_parts([part], assignment, seed_text)
            slots.append(slot_index)
            part_ids.append(k)
    midi = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    midi.instruments = performed
    stems = np.stack(renderer.render_stems(midi))
    scale = STEM_PEAK / max(float(np.abs(stems).max()), 1e-6)
    starts, ends, owners = [], [], []
    for s, inst in enumerate(performed):
        for note in inst.notes:
            starts.append(note.start)
            ends.append(note.end)
            owners.append(s)
    return {
        "stems": np.round(stems * scale * 32767).astype(np.int16),
        "slots": np.array(slots, np.int16),
        "parts": np.array(part_ids, np.int16),
        "note_starts_s": np.array(starts, np.float32),
        "note_ends_s": np.array(ends, np.float32),
        "note_stems": np.array(owners, np.int16),
        "sample_rate": np.array(renderer.sample_rate, np.int32),
    }


def build_judge_data(out_dir: str | Path, config: JudgeDataConfig, progress: bool = True) -> dict:
    """Render every listed piece's stems into `out_dir` (pieces already there are kept)."""
    out_dir = Path(out_dir)
    if config.train_slots_per_part < 1 or config.held_out_slots_per_part < 1:
        raise ConfigError("every part must be played by at least one slot")
    refs = list_scores(config.scores, config.limit)
    renderer = FluidSynthRenderer(config.soundfont, sample_rate=JUDGE_SAMPLE_RATE)
    counts = {"train": 0, "valid": 0, "test": 0}
    skipped = 0
    for index, ref in enumerate(refs):
        split = split_of_piece(ref.name, config.seed)
        safe = "".join(c if c.isalnum() else "-" for c in ref.name)
        path = out_dir / split / f"{index + 1:03d}_{safe}.npz"
        if path.is_file():
            counts[split] += 1
            continue
        try:
            score = load_score(ref)
        except OrchestrionError:
            skipped += 1
            continue
        per_part = config.train_slots_per_part if split == "train" else config.held_out_slots_per_part
        arrays = render_judge_piece(renderer, score, index, per_part, config)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
        counts[split] += 1
        if progress:
            print(f"{split} {path.name}: {len(arrays['slots'])} stems", flush=True)
    renderer.close()
    manifest = {"sample_rate": JUDGE_SAMPLE_RATE, "pieces": counts, "skipped": skipped,
                "config": {k: v for k, v in config.__dict__.items()},
                "slots": [slot.name for slot in InstrumentVocabulary.default()]}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
