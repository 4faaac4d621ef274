"""Build an NSynth-format dataset (json/wav release layout) from FluidSynth single notes.

Layout written, as the real release: `nsynth-<split>/examples.json` and
`nsynth-<split>/audio/<instrument_str>-<pitch:03d>-<velocity:03d>.wav`, 16-bit PCM, 16 kHz,
64,000 samples (3 s held + 1 s release).

Split rule (deterministic): an instrument named in `valid_instruments` / `test_instruments`
goes wholly to that split (NSynth's own rule: its valid/test instruments never appear in
train); otherwise a note whose pitch is in the held-out pitch set goes to valid (even
octave index, pitch // 12) or test (odd), so no instrument ever trains on those pitches;
every other (instrument, pitch) pair is hashed to train / valid / test 80 / 10 / 10, all
velocities of a pair together (SING's split by (instrument, pitch)). A note the SoundFont
renders as silence (no sample at that pitch) is skipped and counted as "skipped".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrion.audio.io import save_audio
from orchestrion.data.build import BuildItem, BuildReport, ItemResult, Shard, load_records, run_build, write_json
from orchestrion.data.gm_nsynth import nsynth_family, nsynth_instrument_str, nsynth_source
from orchestrion.data.instrument_choice import InstrumentChoice, resolve_instruments
from orchestrion.data.render import FluidSynthRenderer, RendererFactory, is_silent
from orchestrion.errors import ConfigError

NSYNTH_SAMPLE_RATE = 16000
HELD_S = 3.0
RELEASE_S = 1.0
DEFAULT_VELOCITIES = (25, 50, 75, 100, 127)
DEFAULT_HELDOUT_PITCH_CLASS = 3  # every D#/Eb is held out of training
SKIPPED_SPLIT = "skipped"
"""`ItemResult.split` of a note that was not written; counted under this name in the manifest."""
DEFAULT_NOTE_GAIN = 1.0
"""FluidSynth master gain of note builds. At FluidSynth's default (0.2) a velocity-127 note
peaks near 0.08 and a velocity-25 one near 0.003, so quiet notes vanish under SING's
log(1 + |STFT|^2) loss; at 1.0 they peak near 0.4 and 0.015 (no note clips)."""


@dataclass(frozen=True)
class NSynthBuildConfig:
    """Everything that decides the content of an NSynth-format build."""

    instruments: tuple[str, ...]
    pitches: tuple[int, int] = (21, 108)
    velocities: tuple[int, ...] = DEFAULT_VELOCITIES
    heldout_pitches: tuple[int, ...] = tuple(p for p in range(128) if p % 12 == DEFAULT_HELDOUT_PITCH_CLASS)
    valid_instruments: tuple[str, ...] = ()
    test_instruments: tuple[str, ...] = ()
    soundfont: str | None = None
    gain: float = DEFAULT_NOTE_GAIN


def parse_pitch_range(text: str) -> tuple[int, int]:
    """"21-108" -> (21, 108), inclusive MIDI numbers."""
    try:
        lo, hi = (int(part) for part in text.split("-"))
    except ValueError:
        raise ConfigError(f"pitch range must look like 21-108, got {text!r}") from None
    if not 0 <= lo <= hi <= 127:
        raise ConfigError(f"pitch range {text} must satisfy 0 <= low <= high <= 127")
    return lo, hi


def parse_int_list(text: str, name: str, lo: int = 0, hi: int = 127) -> tuple[int, ...]:
    """"25,50,100" -> (25, 50, 100), each checked to lie in [lo, hi]."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated integers, got {text!r}") from None
    bad = [v for v in values if not lo <= v <= hi]
    if bad or not values:
        raise ConfigError(f"{name} must be integers in {lo}-{hi}, got {text!r}")
    return values


def split_of(instrument: InstrumentChoice, pitch: int, config: NSynthBuildConfig) -> str:
    """The split of one (instrument, pitch) pair; see the module docstring."""
    if instrument.name in config.valid_instruments:
        return "valid"
    if instrument.name in config.test_instruments:
        return "test"
    if pitch in config.heldout_pitches:
        return "valid" if (pitch // 12) % 2 == 0 else "test"
    bucket = int(hashlib.sha256(f"{instrument.program}:{pitch}".encode()).hexdigest(), 16) % 10
    return "train" if bucket < 8 else ("valid" if bucket == 8 else "test")


def example_entry(program: int, pitch: int, velocity: int, note_id: int) -> dict[str, Any]:
    """One value of examples.json, with every key and type of the real release."""
    # imported here, not at the top: the reader pulls in torch, which worker processes
    # (they only render and write) would otherwise spend seconds importing
    from orchestrion.data.nsynth import FAMILIES, QUALITIES, SOURCES

    instrument_str = nsynth_instrument_str(program)
    family, source = nsynth_family(program), nsynth_source(program)
    return {
        "note": note_id,
        "note_str": f"{instrument_str}-{pitch:03d}-{velocity:03d}",
        "instrument": program,
        "instrument_str": instrument_str,
        "pitch": pitch,
        "velocity": velocity,
        "sample_rate": NSYNTH_SAMPLE_RATE,
        "qualities": [0] * len(QUALITIES),
        "qualities_str": [],
        "instrument_family": FAMILIES.index(family),
        "instrument_family_str": family,
        "instrument_source": SOURCES.index(source),
        "instrument_source_str": source,
    }


def plan_items(config: NSynthBuildConfig) -> list[BuildItem]:
    """One item per (instrument, pitch, velocity), in a stable order."""
    instruments = resolve_instruments(config.instruments)
    unknown = set(config.valid_instruments + config.test_instruments) - {i.name for i in instruments}
    if unknown:
        raise ConfigError(f"held-out instruments {sorted(unknown)} are not among --instruments")
    items = []
    for instrument in instruments:
        lo = max(config.pitches[0], instrument.lowest)
        hi = min(config.pitches[1], instrument.highest)
        for pitch in range(lo, hi + 1):
            split = split_of(instrument, pitch, config)
            for velocity in config.velocities:
                entry = example_entry(instrument.program, pitch, velocity, note_id=len(items))
                items.append(BuildItem(entry["note_str"], {"entry": entry, "split": split}))
    if not 0 < config.gain <= 10:
        raise ConfigError(f"gain must lie in (0, 10] (FluidSynth's range), got {config.gain}")
    if not items:
        raise ConfigError("no notes to build: the pitch range misses every instrument's playable range")
    return items


def render_item(renderer: FluidSynthRenderer, out_dir: Path, item: BuildItem) -> ItemResult:
    """Render and write one note (worker function)."""
    entry, split = item.params["entry"], item.params["split"]
    wave = renderer.render_note(entry["instrument"], entry["pitch"], entry["velocity"], HELD_S, RELEASE_S)
    if is_silent(wave):
        # FluidR3 has no sample there (e.g. violin above 101, alto sax above 84)
        return ItemResult(item.key, [], split=SKIPPED_SPLIT, extra={"entry": entry, "skipped": "silent"})
    name = f"nsynth-{split}/audio/{entry['note_str']}.wav"
    save_audio(out_dir / name, wave, NSYNTH_SAMPLE_RATE, subtype="PCM_16")
    return ItemResult(item.key, [name], duration_s=len(wave) / NSYNTH_SAMPLE_RATE, split=split,
                      extra={"entry": entry})


def write_examples_json(out_dir: Path) -> dict[str, int]:
    """Write `nsynth-<split>/examples.json` from the finished items; return counts per split."""
    by_split: dict[str, dict[str, Any]] = {}
    for record in load_records(out_dir):
        if record["split"] == SKIPPED_SPLIT:
            continue
        entry = record["extra"]["entry"]
        by_split.setdefault(record["split"], {})[entry["note_str"]] = entry
    for split, examples in by_split.items():
        write_json(out_dir / f"nsynth-{split}" / "examples.json", examples)
    return {split: len(examples) for split, examples in sorted(by_split.items())}


def build_nsynth(
    out_dir: str | Path,
    config: NSynthBuildConfig,
    workers: int = 1,
    shard: Shard = Shard(),
    progress: bool = True,
    command: str = "",
) -> BuildReport:
    """Render every planned note (resuming a previous run) and write examples.json + manifest."""
    out_dir = Path(out_dir)
    items = plan_items(config)
    manifest_config = {**json.loads(json.dumps(config.__dict__)), "command": command}
    report = run_build(out_dir, "nsynth", items, render_item, manifest_config,
                       setup=RendererFactory(config.soundfont, NSYNTH_SAMPLE_RATE, config.gain), workers=workers, shard=shard,
                       progress=progress)
    write_examples_json(out_dir)
    return report
