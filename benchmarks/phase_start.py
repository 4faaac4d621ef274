"""Benchmark: where Griffin-Lim starts (random phase vs the phase-vocoder estimate).

Run ``python benchmarks/phase_start.py`` (options: ``--data``, ``--split``, ``--limit``,
``--model``, ``--threads``, ``--variants``).

For each piece, the render model's magnitude (``render_score`` with ``n_iter=0``, the
spectrogram it returns turned back into a magnitude) is given to the render's phase step
(``griffin_lim_blocks``) from each start and iteration count in ``--variants``; the audio
is scored against the reference by the render issue's protocol
(:mod:`orchestrion.metrics.audio`: MS-SSIM, MR-STFT, LSD; means over pieces) and the
phase step is timed (summed over pieces, best of ``--repeats``). The same is done with the
reference's own magnitude ("true magnitude": only the phase is missing), which shows what
each start can reach at all.

Pieces: with ``--data`` (a URMP-format folder), the first ``--limit`` pieces of
``--split``, against their reference mixes; without, the bundled example chorale
against its FluidSynth render.

The render default (``infer.DEFAULT_PHASE_INIT`` / ``DEFAULT_N_ITER``) is compared with
the seed's phase step (random phase, 32 iterations) in the same run. Goal: no worse on
MS-SSIM (within 0.001) and MR-STFT, in at most half the time.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_MIDI = REPO_ROOT / "examples" / "bach_chorale.mid"
SEED_VARIANT = ("random", 32)
"""The seed's phase step: Griffin-Lim from a random phase, 32 iterations."""
MS_SSIM_TOLERANCE = 0.001


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="URMP-format folder (default: the bundled example)")
    parser.add_argument("--split", default="valid", help="split of --data (default valid)")
    parser.add_argument("--limit", type=int, default=8, help="pieces of --data (default 8)")
    parser.add_argument("--model", default=None, help="render model (default render-cpu)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=1, help="best of this many timings")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["random:32", "random:16", "vocoder:0", "vocoder:8", "vocoder:12", "vocoder:16", "vocoder:32"],
        help="START:ITERATIONS, START random or vocoder",
    )
    return parser.parse_args()


ARGS = _parse_args()
for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[variable] = str(ARGS.threads)

import numpy as np  # noqa: E402
import pretty_midi  # noqa: E402
import torch  # noqa: E402

from orchestrion.audio.io import as_saved_wav  # noqa: E402
from orchestrion.audio.spectral import Stft  # noqa: E402
from orchestrion.metrics.audio import compare_pair, protocol_pair  # noqa: E402
from orchestrion.systems.organ.infer import (  # noqa: E402
    DEFAULT_MODEL,
    DEFAULT_N_ITER,
    DEFAULT_PHASE_INIT,
    GRIFFIN_LIM_BLOCK_S,
    GRIFFIN_LIM_OVERLAP_S,
    RenderModel,
    render_score,
)
from orchestrion.audio.blocks import griffin_lim_blocks  # noqa: E402
from orchestrion.systems.organ.windows import from_crossfade_domain  # noqa: E402


def pieces(sample_rate: int) -> list[tuple[str, object, np.ndarray, int]]:
    """(name, score or path, reference audio, its rate) of each piece."""
    if ARGS.data is None:
        from orchestrion.data.render import FluidSynthRenderer

        with FluidSynthRenderer(sample_rate=sample_rate) as fluidsynth:
            reference = fluidsynth.render_score(pretty_midi.PrettyMIDI(str(EXAMPLE_MIDI)))
        return [(EXAMPLE_MIDI.name, EXAMPLE_MIDI, reference, sample_rate)]
    from orchestrion.data.urmp import URMPDataset

    dataset = URMPDataset(ARGS.data, split=ARGS.split)
    chosen = [r for r in dataset.records if r.score_path is not None][: ARGS.limit]
    return [(r.piece_id, r.score_path, *dataset.load_mix(r)) for r in chosen]


def reference_magnitude(reference: np.ndarray, rate: int, n_samples: int, stft: Stft, model_rate: int) -> torch.Tensor:
    """|STFT| of the reference at the model's rate, cut or padded to the render's length."""
    if rate != model_rate:
        from orchestrion.audio.io import resample

        reference = resample(reference, rate, model_rate)
    wave = np.zeros(n_samples, dtype=np.float32)
    wave[: min(n_samples, len(reference))] = reference[:n_samples]
    return stft(torch.from_numpy(wave)).abs()


def main() -> None:
    torch.set_num_threads(ARGS.threads)
    model = RenderModel.from_pretrained(ARGS.model or DEFAULT_MODEL)
    config = model.config
    variants = []
    for text in ARGS.variants:
        start, _, iterations = text.partition(":")
        variants.append((start, int(iterations)))
    for needed in (SEED_VARIANT, (DEFAULT_PHASE_INIT, DEFAULT_N_ITER)):
        if needed not in variants:
            variants.append(needed)
    stft = Stft(config.n_fft, config.hop_length)
    frame_rate = config.frame_rate_hz
    block_frames = max(round(GRIFFIN_LIM_BLOCK_S * frame_rate), 2)
    overlap_frames = round(GRIFFIN_LIM_OVERLAP_S * frame_rate)
    chosen = pieces(config.sample_rate)
    print(
        f"phase start benchmark: model {ARGS.model or DEFAULT_MODEL}, {len(chosen)} piece(s) "
        f"({'the bundled example vs FluidSynth' if ARGS.data is None else f'{ARGS.data} {ARGS.split}'}), "
        f"{ARGS.threads} threads, load average {os.getloadavg()[0]:.1f}"
    )
    magnitudes = {"model": [], "true": []}
    for _, score, reference, rate in chosen:
        result = render_score(score, model, n_iter=0)
        magnitude = from_crossfade_domain(torch.from_numpy(result.spectrogram), "log_power", config.input_gain)
        magnitudes["model"].append((magnitude, len(result.audio)))
        true = reference_magnitude(reference, rate, len(result.audio), stft, config.sample_rate)
        magnitudes["true"].append((true, len(result.audio)))
    griffin_lim_blocks(magnitudes["model"][0][0][:, :200], config.n_fft, config.hop_length, 199 * config.hop_length, 2)

    table: dict[tuple[str, tuple[str, int]], tuple[np.ndarray, float]] = {}
    for source, items in magnitudes.items():
        print(f"\n{source} magnitude:")
        print(f"  {'start':>8} {'iters':>5} | {'MS-SSIM':>7} {'MR-STFT':>7} {'LSD dB':>6} | {'phase s':>7}")
        for start, n_iter in variants:
            rows, seconds = [], 0.0
            for (magnitude, length), (_, _, reference, rate) in zip(items, chosen, strict=True):
                best = float("inf")
                for _ in range(ARGS.repeats):
                    began = time.perf_counter()
                    audio = griffin_lim_blocks(
                        magnitude, config.n_fft, config.hop_length, length, n_iter,
                        torch.Generator().manual_seed(0), block_frames, overlap_frames, init=start,
                    )
                    best = min(best, time.perf_counter() - began)
                seconds += best
                pair = protocol_pair(reference, as_saved_wav(audio, config.sample_rate), rate, config.sample_rate)
                figures = compare_pair(pair)
                rows.append((figures.ms_ssim, figures.mr_stft, figures.lsd))
            mean = np.mean(rows, axis=0)
            table[source, (start, n_iter)] = (mean, seconds)
            mark = "  <- render default" if (start, n_iter) == (DEFAULT_PHASE_INIT, DEFAULT_N_ITER) else ""
            mark = "  <- the seed's" if (start, n_iter) == SEED_VARIANT else mark
            print(f"  {start:>8} {n_iter:>5} | {mean[0]:7.4f} {mean[1]:7.4f} {mean[2]:6.2f} | {seconds:7.2f}{mark}")

    (seed_figures, seed_s) = table["model", SEED_VARIANT]
    (ours, ours_s) = table["model", (DEFAULT_PHASE_INIT, DEFAULT_N_ITER)]
    print(
        f"\nrender default ({DEFAULT_PHASE_INIT}, {DEFAULT_N_ITER} iterations) vs the seed's "
        f"(random, 32) on the model's magnitude: MS-SSIM {ours[0] - seed_figures[0]:+.4f}, "
        f"MR-STFT {ours[1] - seed_figures[1]:+.4f}, LSD {ours[2] - seed_figures[2]:+.2f} dB, "
        f"time x{ours_s / seed_s:.2f}"
    )
    met = ours[0] >= seed_figures[0] - MS_SSIM_TOLERANCE and ours[1] <= seed_figures[1] and ours_s <= 0.5 * seed_s
    print(f"goal (MS-SSIM within {MS_SSIM_TOLERANCE}, MR-STFT no worse, half the time): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
