"""Build timbre-transfer pairs: the same notes and phrases rendered on two instruments.

Layout: `<split>/<source>/<name>.wav` and `<split>/<target>/<name>.wav` (same name, same
length, sample-aligned, since both come from one list of note events) plus `pairs.json`:
`{"source": {...}, "target": {...}, "sample_rate": int, "pairs": [{"name", "split", "kind",
"pitches", "velocity", "duration_s"}]}`. Notes cover the pitches both instruments can play
(the seed used flute -> clarinet, B3-G6, ff); phrases are seeded random melodies in that
range. Split: notes by pitch hash, phrases by index; valid fraction 15 % (the seed's 85/15).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pretty_midi

from orchestrion.audio.io import save_audio
from orchestrion.data.build import BuildItem, BuildReport, ItemResult, Shard, load_records, run_build, write_json
from orchestrion.data.instrument_choice import InstrumentChoice, resolve_instruments
from orchestrion.data.render import FluidSynthRenderer, RendererFactory
from orchestrion.errors import ConfigError

PAIRS_JSON = "pairs.json"


@dataclass(frozen=True)
class PairsBuildConfig:
    """Everything that decides the content of a pairs build."""

    source: str
    target: str
    sample_rate: int = 22050
    pitches: tuple[int, int] | None = None  # None: every pitch both instruments play
    velocity: int = 110  # ff
    note_held_s: float = 1.5
    note_release_s: float = 0.5
    phrases: int = 0
    phrase_notes: int = 8
    phrase_tempo_bpm: float = 100.0
    valid_fraction: float = 0.15
    seed: int = 0
    soundfont: str | None = None


def _split(token: str, valid_fraction: float) -> str:
    bucket = int(hashlib.sha256(token.encode()).hexdigest(), 16) % 1000
    return "valid" if bucket < valid_fraction * 1000 else "train"


def common_range(source: InstrumentChoice, target: InstrumentChoice, pitches: tuple[int, int] | None) -> tuple[int, int]:
    lo, hi = max(source.lowest, target.lowest), min(source.highest, target.highest)
    if pitches is not None:
        lo, hi = max(lo, pitches[0]), min(hi, pitches[1])
    if lo > hi:
        raise ConfigError(f"{source.name} and {target.name} share no playable pitch"
                          + (f" in {pitches[0]}-{pitches[1]}" if pitches else ""))
    return lo, hi


def phrase_notes(seed: int, index: int, lo: int, hi: int, count: int, tempo_bpm: float,
                 velocity: int) -> list[tuple[int, float, float, int]]:
    """A seeded melody: (pitch, start s, end s, velocity) tuples, a step-wise walk in [lo, hi]."""
    rng = random.Random(f"{seed}:{index}")
    beat = 60.0 / tempo_bpm
    pitch = rng.randint(lo, hi)
    notes, time = [], 0.0
    for _ in range(count):
        length = beat * rng.choice((0.5, 1.0, 1.0, 1.5, 2.0))
        notes.append((pitch, time, time + length * 0.95, max(1, min(127, velocity + rng.randint(-15, 10)))))
        time += length
        pitch = min(hi, max(lo, pitch + rng.choice((-4, -2, -1, 1, 2, 3, 5))))
    return notes


def plan_items(config: PairsBuildConfig) -> list[BuildItem]:
    source, target = resolve_instruments((config.source, config.target))
    lo, hi = common_range(source, target, config.pitches)
    programs = {"source_program": source.program, "target_program": target.program,
                "source_name": source.name, "target_name": target.name}
    items = []
    for pitch in range(lo, hi + 1):
        notes = [(pitch, 0.0, config.note_held_s, config.velocity)]
        items.append(BuildItem(f"note-{pitch:03d}", {
            **programs, "kind": "note", "notes": notes, "split": _split(f"note:{pitch}", config.valid_fraction),
            "length_s": config.note_held_s + config.note_release_s}))
    for index in range(config.phrases):
        notes = phrase_notes(config.seed, index, lo, hi, config.phrase_notes, config.phrase_tempo_bpm, config.velocity)
        items.append(BuildItem(f"phrase-{index:05d}", {
            **programs, "kind": "phrase", "notes": notes, "split": _split(f"phrase:{config.seed}:{index}", config.valid_fraction),
            "length_s": notes[-1][2] + config.note_release_s}))
    return items


def _score(program: int, notes: list) -> pretty_midi.PrettyMIDI:
    score = pretty_midi.PrettyMIDI()
    instrument = pretty_midi.Instrument(program=program)
    instrument.notes = [pretty_midi.Note(int(v), int(p), float(s), float(e)) for p, s, e, v in notes]
    score.instruments.append(instrument)
    return score


def render_item(renderer: FluidSynthRenderer, out_dir: Path, item: BuildItem) -> ItemResult:
    """Render one pair (worker function): the same notes on both instruments, equal length."""
    params = item.params
    n = int(round(params["length_s"] * renderer.sample_rate))
    files = []
    for role in ("source", "target"):
        wave = renderer.render_score(_score(params[f"{role}_program"], params["notes"]), tail_s=0.0)
        wave = np.pad(wave, (0, max(0, n - len(wave))))[:n]
        name = f"{params['split']}/{params[f'{role}_name']}/{item.key}.wav"
        save_audio(out_dir / name, wave, renderer.sample_rate, subtype="PCM_16")
        files.append(name)
    pitches = sorted({p for p, *_ in params["notes"]})
    return ItemResult(item.key, files, duration_s=n / renderer.sample_rate, split=params["split"],
                      extra={"kind": params["kind"], "pitches": pitches,
                             "velocity": params["notes"][0][3]})


def write_pairs_json(out_dir: Path, config: PairsBuildConfig) -> dict[str, Any]:
    source, target = resolve_instruments((config.source, config.target))
    pairs = [{"name": r["key"], "split": r["split"], "duration_s": r["duration_s"], **r["extra"]}
             for r in load_records(out_dir)]
    index = {"source": asdict(source), "target": asdict(target), "sample_rate": config.sample_rate, "pairs": pairs}
    write_json(out_dir / PAIRS_JSON, index)
    return index


def build_pairs(
    out_dir: str | Path,
    config: PairsBuildConfig,
    workers: int = 1,
    shard: Shard = Shard(),
    progress: bool = True,
    command: str = "",
) -> BuildReport:
    """Render every planned pair (resuming a previous run) and write pairs.json + manifest."""
    out_dir = Path(out_dir)
    items = plan_items(config)
    report = run_build(out_dir, "pairs", items, render_item, {**asdict(config), "command": command},
                       setup=RendererFactory(config.soundfont, config.sample_rate), workers=workers,
                       shard=shard, progress=progress)
    write_pairs_json(out_dir, config)
    return report
