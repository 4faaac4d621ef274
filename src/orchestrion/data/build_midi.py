"""Build a clean MIDI collection from a score source, split by piece.

Layout written::

    <out>/train/<name>.mid, <out>/valid/<name>.mid, <out>/test/<name>.mid
    <out>/manifest.json      counts, checksums, and the pieces left out and why

Sources are those of `orchestrion.data.scores`: ``music21:bach`` (the chorales, exported
at one fixed tempo, pieces with 2-6 parts) or a folder of ``.mid``/``.midi`` files (names
keep their sub-folders: ``<out>/train/sub/song.mid``). Every score is validated: files
that cannot be read (``unreadable``), that hold no notes (``empty``) or only drum-kit
notes (``drum_only``), and music21 pieces with too few or too many parts (``part_count``)
are left out and counted in the manifest's ``pieces_skipped``. Kept scores are written
with `orchestrion.symbolic.midi.write_midi` as parsed (drum tracks and all), minus tracks
without notes.

The split is by piece, from a hash of the seed and the piece's name (80/10/10 by
default; see `orchestrion.data.build_urmp.split_of_piece`): it does not depend on the
other pieces, shards or the limit, and equals the split `build_urmp` gives the same piece
with the same seed and fractions.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

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
from orchestrion.data.build_urmp import (
    SKIPPED_SPLIT,
    check_fractions,
    skipped_summary,
    split_of_piece,
)
from orchestrion.data.scores import (
    DEFAULT_TEMPO_BPM,
    MUSIC21_PREFIX,
    PartCountError,
    ScoreRef,
    check_tempo,
    list_scores,
    load_score,
)
from orchestrion.errors import DrumOnlyScoreError, EmptyScoreError, MidiReadError, OrchestrionError
from orchestrion.symbolic.midi import write_midi


def _skip_kind(exc: OrchestrionError) -> str:
    if isinstance(exc, PartCountError):
        return "part_count"
    if isinstance(exc, DrumOnlyScoreError):
        return "drum_only"
    if isinstance(exc, EmptyScoreError):
        return "empty"
    if isinstance(exc, MidiReadError):
        return "unreadable"
    return "invalid"


def write_score(_state: Any, out_dir: Path, item: BuildItem) -> ItemResult:
    """Validate one score and write it to ``<split>/<name>.mid`` (the build's worker function)."""
    params = item.params
    ref = ScoreRef(**params["ref"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = load_score(ref, tempo_bpm=params["tempo_bpm"])
    except OrchestrionError as exc:
        return ItemResult(item.key, [], split=SKIPPED_SPLIT,
                          extra={"name": ref.name, "skipped": _skip_kind(exc), "reason": str(exc)})
    split = split_of_piece(ref.name, params["seed"], params["valid_fraction"], params["test_fraction"])
    name = f"{split}/{ref.name}.mid"
    write_midi(score.midi, out_dir / name)
    duration_s = max((note.end for inst in score.midi.instruments for note in inst.notes), default=0.0)
    extra = {
        "name": ref.name,
        "tracks": len(score.midi.instruments),
        "notes": sum(len(inst.notes) for inst in score.midi.instruments),
    }
    return ItemResult(item.key, [name], duration_s=duration_s, split=split, extra=extra)


def item_key(name: str) -> str:
    """A record-file-safe key for a piece name (sub-folders joined with ``~``)."""
    return name.replace("/", "~")


def build_midi(
    out_dir: str | Path,
    source: str = f"{MUSIC21_PREFIX}bach",
    limit: int | None = None,
    workers: int = 1,
    shard: str | Shard = "0/1",
    seed: int = 0,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    tempo_bpm: float = DEFAULT_TEMPO_BPM,
    progress: bool = True,
) -> BuildReport:
    """Validate and write every score of `source` into ``<out>/<split>/<name>.mid``.

    Parameters
    ----------
    out_dir : output folder.
    source : ``"music21:bach"`` or a folder of MIDI files.
    limit : only the first `limit` scores of the source's stable order (skipped ones included).
    workers : worker processes (music21 parsing is the slow part, ~0.4 s per chorale).
    shard : ``"k/N"``: only every N-th score starting at k.
    seed : seed of the split.
    valid_fraction, test_fraction : expected share of pieces in valid and test.
    tempo_bpm : tempo of music21 scores, quarter notes per minute.
    progress : show a progress bar.

    Returns
    -------
    BuildReport; the manifest's ``pieces_skipped`` counts the pieces left out by reason
    (``unreadable``, ``empty``, ``drum_only``, ``part_count``) and ``skipped_pieces`` names them.
    """
    out_dir = Path(out_dir)
    shard = shard if isinstance(shard, Shard) else Shard.parse(shard)
    check_fractions(valid_fraction, test_fraction)
    check_tempo(tempo_bpm)
    refs = list_scores(str(source), limit)
    items = [
        BuildItem(item_key(ref.name), {
            "ref": asdict(ref), "seed": seed, "valid_fraction": valid_fraction,
            "test_fraction": test_fraction, "tempo_bpm": float(tempo_bpm),
        })
        for ref in refs
    ]
    config = {
        "source": str(source),
        "limit": limit,
        "seed": seed,
        "valid_fraction": valid_fraction,
        "test_fraction": test_fraction,
        "tempo_bpm": float(tempo_bpm),
        "command": current_command(),
    }
    report = run_build(out_dir, "midi", items, write_score, config, workers=workers, shard=shard,
                       progress=progress)
    manifest = {**report.manifest, **skipped_summary(load_records(out_dir))}
    write_json(out_dir / MANIFEST_NAME, manifest)
    report.manifest = manifest
    return report
