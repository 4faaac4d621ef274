"""Data-engine throughput on this machine: NSynth notes per second with 1 and 2 workers, and
URMP-format chorale audio seconds per second; the goal is 2 workers >= 1.8x one.

usage: python benchmarks/data.py [--notes-instruments flute,violin,clarinet,trumpet] [--chorales 6]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from orchestrion.data.build_nsynth import NSynthBuildConfig, build_nsynth


def time_nsynth(workers: int, instruments: tuple[str, ...], root: Path) -> tuple[float, int]:
    config = NSynthBuildConfig(instruments=instruments, pitches=(21, 108), velocities=(25, 75, 127))
    start = time.perf_counter()
    report = build_nsynth(root / f"nsynth-{workers}", config, workers=workers, progress=False)
    return time.perf_counter() - start, report.manifest["items_finished"]


def time_urmp(workers: int, chorales: int, root: Path) -> tuple[float, float]:
    from orchestrion.data.build_urmp import build_urmp

    start = time.perf_counter()
    report = build_urmp(root / f"urmp-{workers}", scores="music21:bach", limit=chorales, workers=workers,
                        progress=False)
    return time.perf_counter() - start, report.manifest["audio_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes-instruments", default="flute,violin,clarinet,trumpet")
    parser.add_argument("--chorales", type=int, default=8)
    args = parser.parse_args()
    instruments = tuple(args.notes_instruments.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = []
        for workers in (1, 2):
            seconds, notes = time_nsynth(workers, instruments, root)
            rows.append(("nsynth notes/s", workers, notes / seconds, notes, seconds))
        for workers in (1, 2):
            seconds, audio_s = time_urmp(workers, args.chorales, root)
            rows.append(("urmp chorale audio s/s (48 kHz, stems + mix)", workers, audio_s / seconds, audio_s, seconds))
    print(f"{'measure':48s} {'workers':>7s} {'rate':>9s} {'amount':>9s} {'wall s':>7s}")
    for name, workers, rate, amount, seconds in rows:
        print(f"{name:48s} {workers:7d} {rate:9.1f} {amount:9.1f} {seconds:7.2f}")
    for name in ("nsynth notes/s", "urmp chorale audio s/s (48 kHz, stems + mix)"):
        one, two = (r[2] for r in rows if r[0] == name)
        verdict = "met" if two >= 1.8 * one else "NOT met"
        print(f"{name}: 2 workers = {two / one:.2f}x one worker (goal >= 1.8x: {verdict})")


if __name__ == "__main__":
    main()
