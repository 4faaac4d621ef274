"""Training the instrument judge (`orchestrion train judge`) and measuring its ceiling.

Examples are drawn on the fly from `orchestrion data judge` stems (see
:mod:`orchestrion.metrics.judge_data`): a piece, a 2 s window, 0-5 of its parts (mostly 3
or 4, as in a chorale's mix; the preset's `part_count_weights`) with one stem each (a random
slot that played that part), each at a random level (`part_gain_db`), the sum at a random
overall level, sometimes with faint noise. The labels are the slots whose
notes sound in the window (`JudgeConfig.present_min_s`), the same rule that labels a
score's chunks at evaluation. Train pieces train; the ceiling is the judge's figures on a
fixed, seeded draw of chunks from the valid and the test pieces (never trained on).
"""

from __future__ import annotations

import datetime
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from orchestrion.errors import DatasetError
from orchestrion.metrics.judge import (
    JUDGE_SYSTEM,
    InstrumentJudge,
    JudgeConfig,
    JudgeScores,
    judge_scores,
    overlap_s,
)
from orchestrion.presets import pick_preset

MIX_PEAK = (0.01, 1.0)
NOISE_SHARE = 0.3
PEAK_RANGE_DB = 80.0
"""The trained judge reads log-mel images in dB re each chunk's peak, this far down."""
CEILING_CHUNKS = 512
"""Chunks drawn from each held-out split for the ceiling (seeded: the same on every run)."""


@dataclass(frozen=True)
class JudgeTrainConfig:
    """A training preset: steps, batch, learning rate, seed, and how mixtures are drawn.

    `part_count_weights[k]` is the probability of a draw holding k parts (a chorale's mix
    holds 4 or 5); each part is scaled by a level drawn from `part_gain_db`.
    """

    steps: int = 4000
    batch_size: int = 48
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    part_count_weights: tuple[float, ...] = (0.02, 0.08, 0.10, 0.30, 0.40, 0.10)
    part_gain_db: tuple[float, float] = (-6.0, 0.0)


PRESETS = {
    "cpu": JudgeTrainConfig(),
    "tiny": JudgeTrainConfig(steps=4, batch_size=8),
}


@dataclass
class JudgePiece:
    """One piece's stems (int16, kept as loaded), their slots and parts, and the notes of each stem."""

    name: str
    stems: np.ndarray
    slots: np.ndarray
    parts: np.ndarray
    notes: list[tuple[np.ndarray, np.ndarray]]

    @property
    def n_samples(self) -> int:
        return int(self.stems.shape[1])


def load_judge_pieces(data_dir: str | Path, split: str, sample_rate: int) -> list[JudgePiece]:
    """Every piece of one split of an `orchestrion data judge` folder."""
    folder = Path(data_dir) / split
    paths = sorted(folder.glob("*.npz"))
    if not paths:
        raise DatasetError(f"no {split} pieces (build them with `orchestrion data judge`)", folder)
    pieces = []
    for path in paths:
        with np.load(path, allow_pickle=False) as arrays:
            if int(arrays["sample_rate"]) != sample_rate:
                raise DatasetError(f"rendered at {int(arrays['sample_rate'])} Hz, the judge reads {sample_rate} Hz", path)
            owners = arrays["note_stems"]
            notes = [(arrays["note_starts_s"][owners == s], arrays["note_ends_s"][owners == s])
                     for s in range(len(arrays["slots"]))]
            pieces.append(JudgePiece(path.stem, arrays["stems"], arrays["slots"].astype(np.int64),
                                     arrays["parts"].astype(np.int64), notes))
    return pieces


def draw_example(pieces: list[JudgePiece], config: JudgeConfig, train: JudgeTrainConfig,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One mixture chunk (chunk_samples,) float32 and its multi-hot labels (slots,)."""
    n = config.chunk_samples
    piece = pieces[int(rng.integers(len(pieces)))]
    start = int(rng.integers(0, max(1, piece.n_samples - n)))
    begin_s = start / config.sample_rate
    part_ids = np.unique(piece.parts)
    weights = np.asarray(train.part_count_weights, np.float64)
    count = min(int(rng.choice(len(weights), p=weights / weights.sum())), len(part_ids))
    wave = np.zeros(n, np.float32)
    labels = np.zeros(len(config.slots), np.float32)
    for part in rng.choice(part_ids, size=count, replace=False):
        stem = int(rng.choice(np.flatnonzero(piece.parts == part)))
        gain = 10.0 ** (rng.uniform(*train.part_gain_db) / 20.0)
        segment = piece.stems[stem, start:start + n].astype(np.float32) / 32767.0
        wave[:len(segment)] += gain * segment
        starts, ends = piece.notes[stem]
        if overlap_s(starts, ends, begin_s, begin_s + config.chunk_s) >= config.present_min_s:
            labels[int(piece.slots[stem])] = 1.0
    peak = float(np.abs(wave).max())
    if peak > 0:
        wave *= math.exp(rng.uniform(*np.log(MIX_PEAK))) / peak
    if rng.random() < NOISE_SHARE:
        wave += rng.normal(0.0, 10.0 ** rng.uniform(-5.0, -2.5), n).astype(np.float32)
    return wave, labels


def draw_batch(pieces: list[JudgePiece], config: JudgeConfig, train: JudgeTrainConfig,
               rng: np.random.Generator, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    examples = [draw_example(pieces, config, train, rng) for _ in range(size)]
    return (torch.from_numpy(np.stack([e[0] for e in examples])),
            torch.from_numpy(np.stack([e[1] for e in examples])))


@torch.inference_mode()
def ceiling_scores(judge: InstrumentJudge, pieces: list[JudgePiece], train: JudgeTrainConfig,
                   n_chunks: int = CEILING_CHUNKS, seed: int = 1) -> JudgeScores:
    """The judge's figures on a fixed seeded draw (drawn as in training) of real held-out chunks."""
    judge.eval()
    rng = np.random.default_rng([seed, 41])
    waves, labels = draw_batch(pieces, judge.config, train, rng, n_chunks)
    return judge_scores(judge.probabilities(waves).numpy(), labels.numpy(), judge.config.slots, judge.config.threshold)


def _count_text(train: JudgeTrainConfig) -> str:
    """'0/1/2/3/4/5 (2/8/10/30/40/10 % of the draws)': how many parts a draw holds, and how often."""
    weights = np.asarray(train.part_count_weights, np.float64)
    shares = weights / weights.sum() * 100
    return (f"{'/'.join(str(k) for k in range(len(weights)))} "
            f"({'/'.join(f'{share:.0f}' for share in shares)} % of the draws)")


def _card(config: JudgeConfig, train: JudgeTrainConfig, command: str, data_manifest: dict,
          ceiling: dict[str, JudgeScores], n_params: int, minutes: float) -> str:
    lines = [
        "# judge-cpu: the instrument judge",
        "",
        f"- {datetime.date(2026, 12, 8).isoformat()}: trained from scratch ({train.steps} steps, "
        f"{minutes:.1f} CPU-minutes).",
        "",
        "A log-mel CNN multi-label classifier over the 16 instrument slots "
        f"({', '.join(config.slots)}): {n_params:,} parameters, 2 s chunks at "
        f"{config.sample_rate} Hz, threshold {config.threshold} fixed before it scored anything. "
        "It reads audio only, never a score. It is no training loss of any model and is not "
        "retrained to move a figure.",
        "",
        "## Rebuild from scratch",
        "",
        "```",
        "orchestrion data judge data/judge16 --limit 120",
        command,
        "```",
        "",
        "## Data seen",
        "",
        "Only FluidSynth (FluidR3_GM) renders of the music21 Bach chorales: each part of each "
        "train piece played alone by several slots (moved by octaves into the slot's range, "
        f"seeded dynamics), mixed on the fly: {_count_text(train)} parts, one slot each, at "
        f"{train.part_gain_db[0]:g}..{train.part_gain_db[1]:g} dB each, at a random overall level, "
        f"sometimes with faint noise. Pieces: {data_manifest.get('pieces')}. "
        "The split is `data urmp`'s (same seed), so no valid or test piece of a chorale build "
        "was seen.",
        "",
        "## Ceiling (real held-out chunks)",
        "",
        "A chunk is named in full when the slots above the threshold are exactly the slots "
        "sounding in it. Drawn as in training, "
        f"{CEILING_CHUNKS} seeded chunks per split:",
        "",
    ]
    for split, scores in ceiling.items():
        lines.append(f"- {split}: macro accuracy {scores.macro_accuracy:.3f} ({scores.n_chunks} chunks)")
    lines += ["", "Per slot (test):", "", "```"]
    lines += ceiling["test"].format_per_slot(indent="")
    lines += ["```", ""]
    return "\n".join(lines)


def train_judge(data_dir: str | Path, out_dir: str | Path, preset: str = "cpu", command: str = "",
                progress: bool = True) -> dict[str, JudgeScores]:
    """Train a judge on `data_dir`'s train pieces, measure its ceiling, write it to `out_dir`."""
    from orchestrion.checkpoints import save_checkpoint  # noqa: PLC0415

    train = pick_preset(PRESETS, preset, {}, "judge")
    config = JudgeConfig(peak_range_db=PEAK_RANGE_DB)
    torch.manual_seed(train.seed)
    rng = np.random.default_rng(train.seed)
    pieces = load_judge_pieces(data_dir, "train", config.sample_rate)
    held_out = {split: load_judge_pieces(data_dir, split, config.sample_rate) for split in ("valid", "test")}
    judge = InstrumentJudge(config)
    optimiser = torch.optim.AdamW(judge.parameters(), lr=train.learning_rate, weight_decay=train.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=train.learning_rate,
                                                   total_steps=train.steps, pct_start=0.1)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    started = time.process_time()
    judge.train()
    for step in range(1, train.steps + 1):
        waves, labels = draw_batch(pieces, config, train, rng, train.batch_size)
        loss = loss_fn(judge(waves), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if progress and (step % 100 == 0 or step == train.steps):
            print(f"step {step}/{train.steps}  loss {loss.item():.4f}  "
                  f"{(time.process_time() - started) / 60:.1f} CPU-min", flush=True)
    ceiling = {split: ceiling_scores(judge, split_pieces, train) for split, split_pieces in held_out.items()}
    minutes = (time.process_time() - started) / 60
    manifest_path = Path(data_dir) / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    n_params = sum(p.numel() for p in judge.parameters())
    document = {"model": config.to_dict(), "training": asdict(train),
                "ceiling": {split: scores.to_dict() for split, scores in ceiling.items()}}
    save_checkpoint(out_dir, JUDGE_SYSTEM, document, judge.state_dict(),
                    _card(config, train, command, manifest, ceiling, n_params, minutes), half=True)
    return ceiling
