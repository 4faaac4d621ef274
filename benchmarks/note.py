"""Benchmark: SING note generation speed (notes per second, batched) on a few CPU cores.

Run ``python benchmarks/note.py`` (options: ``--threads``, ``--notes``, ``--batch-size``,
``--paper-notes``, ``--paper-batch-size``, ``--repeats``, ``--model``, ``--skip-paper``).

What is timed: `orchestrion.systems.sing.infer.generate_notes`, the function the CLI and the
web page call, on ``--notes`` requests spread over instruments, pitches 40-90 and 5
velocities, in batches of ``--batch-size``: request checks, LSTM over 265 latent frames,
decoder, copy to numpy. Each output is one 4 s note (64,000 samples at 16 kHz), so
``notes/s x 4`` is the real-time factor. Time is the best of ``--repeats`` runs after a
warm-up batch, with torch pinned to ``--threads`` intra-op threads.

Models: the ``cpu`` preset (or a trained model folder with ``--model``) and, for scale, the
``paper`` preset's size (SING's 4096 channels and 3 x 1024 LSTM, random weights: speed does
not depend on the values). The goal is >= 50 notes/s (200x real time) for ``cpu`` on 2 cores.
A split of one batch's time into LSTM and decoder is printed too.
"""

from __future__ import annotations

import argparse
import os
import time

GOAL_NOTES_PER_S = 50.0
NOTE_SECONDS = 4.0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--notes", type=int, default=256, help="notes per run, cpu preset")
    parser.add_argument("--batch-size", type=int, default=64, help="batch, cpu preset")
    parser.add_argument("--paper-notes", type=int, default=8, help="notes per run, paper size")
    parser.add_argument("--paper-batch-size", type=int, default=8, help="batch, paper size")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--model", default=None, help="a trained note model instead of the cpu preset")
    parser.add_argument("--skip-paper", action="store_true", help="only the cpu preset")
    return parser.parse_args()


ARGS = _parse_args()
for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[variable] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from orchestrion.systems.sing.data import InstrumentEntry, InstrumentTable  # noqa: E402
from orchestrion.systems.sing.infer import NoteModel, generate_notes  # noqa: E402
from orchestrion.systems.sing.model import Sing  # noqa: E402
from orchestrion.systems.sing.presets import get_preset  # noqa: E402

VELOCITIES = (25, 50, 75, 100, 127)
PITCHES = tuple(range(40, 91))


def random_model(preset: str, n_instruments: int = 8) -> NoteModel:
    """A NoteModel of the preset's size with random weights and a made-up instrument table."""
    torch.manual_seed(0)
    sing = Sing(get_preset(preset, n_instruments=n_instruments))
    entries = tuple(InstrumentEntry(f"instrument{i}", i, i, f"keyboard_acoustic_{i:03d}", PITCHES)
                    for i in range(n_instruments))
    return NoteModel(sing, InstrumentTable(entries, VELOCITIES))


def requests_for(model: NoteModel, count: int) -> list[tuple[str, int, int]]:
    names = model.table.names
    rng = np.random.default_rng(0)
    velocities = model.table.train_velocities or VELOCITIES
    requests = []
    for index in range(count):
        entry = model.table.lookup(names[index % len(names)])
        pitch = int(rng.integers(entry.lowest_pitch, entry.highest_pitch + 1))
        requests.append((entry.name, pitch, int(velocities[index % len(velocities)])))
    return requests


@torch.inference_mode()
def split_one_batch(model: NoteModel, batch: int) -> tuple[float, float]:
    """Seconds for the LSTM and for the decoder on one batch."""
    ids = (torch.zeros(batch, dtype=torch.long), torch.full((batch,), 60), torch.full((batch,), 100))
    started = time.perf_counter()
    latent = model.sing.generate_latent(*ids)
    middle = time.perf_counter()
    model.sing.decoder(latent, ids[1])
    return middle - started, time.perf_counter() - middle


def benchmark(label: str, model: NoteModel, notes: int, batch_size: int, repeats: int) -> float:
    requests = requests_for(model, notes)
    generate_notes(model, requests[:batch_size], batch_size=batch_size)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        waves = generate_notes(model, requests, batch_size=batch_size)
        best = min(best, time.perf_counter() - started)
    assert waves.shape == (notes, model.n_samples) and np.isfinite(waves).all()
    rate = notes / best
    lstm_s, decoder_s = split_one_batch(model, batch_size)
    counts = model.sing.count_parameters()
    print(f"{label:<12} {counts['generator'] + counts['decoder']:>12,} {batch_size:>6} {notes:>6} "
          f"{best:>8.2f} {rate:>9.1f} {rate * NOTE_SECONDS:>8.0f}x   "
          f"LSTM {lstm_s:.2f} s / decoder {decoder_s:.2f} s per batch")
    return rate


def main() -> None:
    import warnings

    torch.set_num_threads(ARGS.threads)
    print(f"SING note generation, {ARGS.threads} threads, torch {torch.__version__}, best of "
          f"{ARGS.repeats}; one note = {NOTE_SECONDS:.0f} s at 16 kHz")
    print(f"{'model':<12} {'weights used':>12} {'batch':>6} {'notes':>6} {'time s':>8} "
          f"{'notes/s':>9} {'realtime':>9}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if ARGS.model:
            cpu_model, label = NoteModel.from_pretrained(ARGS.model), "model"
        else:
            cpu_model, label = random_model("cpu"), "cpu"
        cpu_rate = benchmark(label, cpu_model, ARGS.notes, ARGS.batch_size, ARGS.repeats)
        if not ARGS.skip_paper:
            benchmark("paper", random_model("paper"), ARGS.paper_notes, ARGS.paper_batch_size,
                      ARGS.repeats)
    verdict = "met" if cpu_rate >= GOAL_NOTES_PER_S else "NOT met"
    print(f"goal >= {GOAL_NOTES_PER_S:.0f} notes/s ({GOAL_NOTES_PER_S * NOTE_SECONDS:.0f}x real "
          f"time) for {label}: {verdict} ({cpu_rate:.1f} notes/s)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(1-minute load average during the run: {load:.1f} on {os.cpu_count()} cores; "
          "other processes slow every figure above)")


if __name__ == "__main__":
    main()
