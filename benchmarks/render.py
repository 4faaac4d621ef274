"""Benchmark: orGAN rendering speed (vs FluidSynth) and peak memory against score length.

Run ``python benchmarks/render.py`` (options: ``--threads``, ``--repeats``, ``--model``,
``--seconds``, ``--memory-minutes``).

Scores are made from ``examples/bach_chorale.mid`` (4 parts, 22.5 s): the chorale is
played again and again, each time transposed (0, +2, -3, +5, ... semitones), until the
wanted length, then cut there.

* **Speed**: a 60 s 4-part score (flute, clarinet, horn, bassoon) at 16 kHz, rendered by
  :func:`orchestrion.systems.organ.infer.render_score` with its defaults (8 s windows,
  Griffin-Lim from the phase-vocoder start, ``DEFAULT_N_ITER`` iterations), in both modes (each part
  alone, the default, and the whole mix at once, ``--mix``), and by FluidSynth
  (FluidR3_GM, reverb and chorus off) in the same run, interleaved, best of
  ``--repeats``. Reported as seconds of audio per wall second; the share of the
  generator is measured with ``n_iter=0``, and the default mode is also timed with the
  seed's phase step (random start, 32 iterations) for comparison. Goal: >= 20x real time.
* **Memory**: peak resident memory (``VmHWM``) of a fresh process that loads the
  model and renders an 8-part score (the four parts doubled an octave apart by violin,
  viola, cello and double bass) of 1 and of 3 minutes (``--memory-minutes``); the
  process's memory before rendering is shown too. Goal: <= 2 GB at 3 minutes, and flat:
  what the longer score adds is no more than its output (audio + spectrogram arrays,
  ~0.6 MB per second of score) plus 10 %.

With no shipped ``render-cpu`` model (and no ``--model``), a randomly initialised
cpu-preset model is used and the output says so: speed and memory do not depend on the
weights. Timings on a shared machine are noisy; the load average is printed alongside.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_MIDI = REPO_ROOT / "examples" / "bach_chorale.mid"
TRANSPOSITIONS = (0, 2, -3, 5, -2, 3, -5, 1)
DOUBLINGS = {73: (40, 12), 71: (41, 0), 60: (42, -12), 70: (43, -12)}
"""Original GM program -> (doubling program, octave shift in semitones) for 8 parts."""
SPEED_GOAL_X = 20.0
MEMORY_GOAL_MB = 2048.0
RENDER_MODES = {"per-track": (True, "each part alone (default)"), "mix": (False, "all parts at once (--mix)")}
"""The two render modes timed: render_score's per_track flag and a label."""


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs (default 3)")
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="speed score length (default 60 s)"
    )
    parser.add_argument(
        "--model", default=None, help="checkpoint folder or shipped name (default render-cpu)"
    )
    parser.add_argument("--memory-minutes", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--memory-probe", type=float, default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


ARGS = _parse_args()
for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[variable] = str(ARGS.threads)

import resource  # noqa: E402

import pretty_midi  # noqa: E402
import torch  # noqa: E402

from orchestrion.checkpoints import CheckpointError  # noqa: E402
from orchestrion.systems.organ import get_preset  # noqa: E402
from orchestrion.systems.organ.infer import (  # noqa: E402
    DEFAULT_MODEL,
    DEFAULT_N_ITER,
    RenderModel,
    render_score,
)
from orchestrion.systems.organ.model import OrganNetwork  # noqa: E402


def make_score(seconds: float, eight_parts: bool = False) -> pretty_midi.PrettyMIDI:
    """The chorale repeated with transpositions up to `seconds`, 4 or 8 parts."""
    chorale = pretty_midi.PrettyMIDI(str(EXAMPLE_MIDI))
    length = max(n.end for inst in chorale.instruments for n in inst.notes)
    score = pretty_midi.PrettyMIDI()
    tracks: dict[tuple[int, int], pretty_midi.Instrument] = {}
    repeat = 0
    while repeat * length < seconds:
        offset, shift = repeat * length, TRANSPOSITIONS[repeat % len(TRANSPOSITIONS)]
        for inst in chorale.instruments:
            layers = [(inst.program, 0)] + ([DOUBLINGS[inst.program]] if eight_parts else [])
            for program, octave in layers:
                track = tracks.setdefault(
                    (program, octave), pretty_midi.Instrument(program=program)
                )
                for note in inst.notes:
                    start = note.start + offset
                    if start >= seconds:
                        continue
                    track.notes.append(
                        pretty_midi.Note(
                            note.velocity,
                            note.pitch + shift + octave,
                            start,
                            min(note.end + offset, seconds),
                        )
                    )
        repeat += 1
    score.instruments.extend(tracks.values())
    return score


def load_model() -> tuple[RenderModel, str]:
    name = ARGS.model or DEFAULT_MODEL
    try:
        return RenderModel.from_pretrained(name), f"model {name}"
    except CheckpointError:
        if ARGS.model:
            raise
        torch.manual_seed(0)
        return (
            RenderModel.from_config(get_preset("cpu")),
            f"no shipped `{DEFAULT_MODEL}` model: a randomly initialised cpu-preset model "
            "(speed and memory do not depend on the weights)",
        )


def rss_mb() -> float:
    """Peak resident memory of this process so far, MB.

    ``VmHWM`` from /proc (per address space); ``ru_maxrss`` as a fallback, which on Linux
    also counts the parent's memory at fork time (the kernel carries it across exec).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def memory_probe(minutes: float) -> None:
    """Child process: load, render an 8-part score of `minutes`, print peak RSS as JSON."""
    torch.set_num_threads(ARGS.threads)
    model, _ = load_model()
    score = make_score(60.0 * minutes, eight_parts=True)
    before = rss_mb()
    result = render_score(score, model)
    print(
        json.dumps(
            {
                "minutes": minutes,
                "before_mb": before,
                "peak_mb": rss_mb(),
                "output_mb": (result.audio.nbytes + result.spectrogram.nbytes) / 2**20,
                "parts": len(score.instruments),
                "audio_s": result.duration_s,
            }
        )
    )


def speed(model: RenderModel) -> dict[str, float]:
    """Best-of-repeats wall seconds of both render modes (with and without phase) and FluidSynth."""
    from orchestrion.data.render import FluidSynthRenderer

    score = make_score(ARGS.seconds)
    names = (*RENDER_MODES, *(f"{m} generator" for m in RENDER_MODES), "seed phase", "fluidsynth")
    best = {name: float("inf") for name in names}
    render_score(score, model)  # warm-up (oneDNN primitives, threads)
    with FluidSynthRenderer(sample_rate=model.config.sample_rate) as fluidsynth:
        for _ in range(ARGS.repeats):
            for mode, (per_track, _) in RENDER_MODES.items():
                runs = [(mode, DEFAULT_N_ITER, "vocoder"), (f"{mode} generator", 0, "vocoder")]
                if per_track:
                    runs.append(("seed phase", 32, "random"))
                for name, n_iter, phase_init in runs:
                    model.clear_noise_cache()  # time what the CLI pays: the noise estimate included
                    start = time.perf_counter()
                    result = render_score(
                        score, model, per_track=per_track, n_iter=n_iter, phase_init=phase_init
                    )
                    best[name] = min(best[name], time.perf_counter() - start)
            start = time.perf_counter()
            fluidsynth.render_score(score)
            best["fluidsynth"] = min(best["fluidsynth"], time.perf_counter() - start)
    return {"audio_s": result.duration_s, **best}


def main() -> None:
    if ARGS.memory_probe is not None:
        memory_probe(ARGS.memory_probe)
        return
    torch.set_num_threads(ARGS.threads)
    model, what = load_model()
    config = model.config
    print(f"orGAN render benchmark: {what}")
    counts = OrganNetwork.from_config(config).parameter_counts()
    lobes = f" + {counts['learned lobes']:,} learned lobe corrections" if counts["learned lobes"] else ""
    print(
        f"  {config.sample_rate} Hz, n_fft {config.n_fft}, hop {config.hop_length}, "
        f"{counts['generator']:,} generator parameters{lobes} as trained, "
        f"{ARGS.threads} torch threads, load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )

    figures = speed(model)
    audio_s = figures["audio_s"]
    print(f"\nspeed, {audio_s:.1f} s 4-part score (best of {ARGS.repeats}):")
    for mode, (_, label) in RENDER_MODES.items():
        print(
            f"  orGAN, {label}, incl. {DEFAULT_N_ITER} Griffin-Lim iterations from the vocoder "
            f"phase: {figures[mode]:.2f} s = "
            f"{audio_s / figures[mode]:.1f}x real time "
            f"(generator + overlap-add alone {figures[f'{mode} generator']:.2f} s)"
        )
    seed = figures["seed phase"]
    print(
        f"  orGAN, each part alone, with the seed's phase step (random start, 32 iterations): "
        f"{seed:.2f} s = {audio_s / seed:.1f}x real time"
    )
    print(f"  FluidSynth: {figures['fluidsynth']:.2f} s = {audio_s / figures['fluidsynth']:.1f}x real time")
    for mode in RENDER_MODES:
        met = audio_s / figures[mode] >= SPEED_GOAL_X
        print(f"  goal >= {SPEED_GOAL_X:.0f}x real time, {mode}: {'met' if met else 'NOT met'}")

    probes = []
    for minutes in ARGS.memory_minutes:
        command = [
            sys.executable,
            __file__,
            "--memory-probe",
            str(minutes),
            "--threads",
            str(ARGS.threads),
        ]
        if ARGS.model:
            command += ["--model", ARGS.model]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        probes.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print("\npeak memory, 8-part score (fresh process each):")
    for probe in probes:
        print(
            f"  {probe['minutes']:.1f} min ({probe['parts']} parts): "
            f"peak {probe['peak_mb']:.0f} MB (model loaded: {probe['before_mb']:.0f} MB; "
            f"output arrays {probe['output_mb']:.0f} MB)"
        )
    longest = max(probes, key=lambda p: p["minutes"])
    shortest = min(probes, key=lambda p: p["minutes"])
    growth = longest["peak_mb"] - shortest["peak_mb"]
    allowance = 1.1 * (longest["output_mb"] - shortest["output_mb"])
    flat = growth <= max(allowance, 0.0) + 32.0  # + 32 MB of allocator noise
    within = longest["peak_mb"] <= MEMORY_GOAL_MB
    print(
        f"  {longest['minutes']:.0f} min adds {growth:.0f} MB over {shortest['minutes']:.0f} min; "
        f"its longer output accounts for {longest['output_mb'] - shortest['output_mb']:.0f} MB"
    )
    print(
        f"  goal <= {MEMORY_GOAL_MB / 1024:.0f} GB: {'met' if within else 'NOT met'}; "
        f"flat in length: {'met' if flat else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
