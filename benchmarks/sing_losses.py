"""Seed 004 reproduced: SING trained briefly with {ReLU, ELU} x {STFT, CQT, MFCC} losses.

Run ``python benchmarks/sing_losses.py`` (see ``--help``; ``--steps``, ``--stages``, ``--set``
and the data options make a quick run possible).

The seed ("Modifications to SING") found that its CQT and MFC losses never moved: the
transform went tensor -> numpy -> tensor and cut the autograd graph. Ours are torch end to
end (`orchestrion.nn.spectral_losses.LogSpectralLoss`), so every run must move.

Data: a small NSynth-format build made here with our builder (default: piano, GM 11
vibraphone and voice, the seed's keyboard / mallet / vocal families; pitches 48-72;
velocity 100), split by (instrument, pitch) with every D#/Eb held out. It is reused from
``--data`` when already built.

For each of the 6 variants the ``cpu`` preset with SING's conv output, the spectral loss in
stages 1 and 3 and SING's default init (the preset's harmonic output and Kaiming init are
replaced, as in the seed) plus ``--set`` overrides trains the chosen
stages (default: the autoencoder, where the seed compared the losses) for ``--steps``
batches each, from the same seed. Printed per variant and stage: the held-out loss
(validation notes) before and after training under the variant's *own* loss, the relative
change, whether it moved (|change| > ``--moved-threshold``), and the held-out log-STFT loss
of the final model, the one yardstick common to all six (the seed's "side loss", its Fig. 1).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

LOSSES = ("stft", "cqt", "mfcc")
ACTIVATIONS = ("relu", "elu")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--data", type=Path,
                        default=Path(tempfile.gettempdir()) / "orchestrion-sing-losses-data",
                        help="NSynth-format folder to build (or reuse)")
    parser.add_argument("--out", type=Path, default=None,
                        help="run folders (default: a fresh temporary folder)")
    parser.add_argument("--instruments", default="piano,11,voice",
                        help="instruments for the build: names or GM numbers")
    parser.add_argument("--pitches", default="48-72", help="MIDI range of the build")
    parser.add_argument("--velocities", default="100", help="velocities of the build")
    parser.add_argument("--stages", default="autoencoder",
                        help="comma list of stages to train (autoencoder,sequence,finetune)")
    parser.add_argument("--steps", type=int, default=40, help="batches per stage (default 40)")
    parser.add_argument("--minutes", type=float, default=None, help="cap per stage, minutes")
    parser.add_argument("--validate-notes", type=int, default=32, help="held-out notes to score")
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        help="SING config override key=value (repeatable), e.g. channels=64")
    parser.add_argument("--losses", default=",".join(LOSSES), help="subset of stft,cqt,mfcc")
    parser.add_argument("--activations", default=",".join(ACTIVATIONS), help="subset of relu,elu")
    parser.add_argument("--moved-threshold", type=float, default=0.01,
                        help="relative change that counts as moving (default 1%%)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


ARGS = _parse_args()
for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[variable] = str(ARGS.threads)

import torch  # noqa: E402
from torch.utils.data import DataLoader, Subset  # noqa: E402

from orchestrion.checkpoints import load_checkpoint  # noqa: E402
from orchestrion.data.build_nsynth import (  # noqa: E402
    NSynthBuildConfig,
    build_nsynth,
    parse_int_list,
    parse_pitch_range,
)
from orchestrion.data.instrument_choice import resolve_instruments  # noqa: E402
from orchestrion.nn.spectral_losses import LogSpectralLoss  # noqa: E402
from orchestrion.systems.sing.commands import parse_overrides  # noqa: E402
from orchestrion.systems.sing.data import SingNotes, describe_data, list_notes, spread_subset  # noqa: E402
from orchestrion.systems.sing.infer import NoteModel  # noqa: E402
from orchestrion.systems.sing.model import Sing  # noqa: E402
from orchestrion.systems.sing.train import train_note  # noqa: E402


def build_data() -> Path:
    instruments = tuple(t.strip() for t in ARGS.instruments.split(",") if t.strip())
    names = [choice.name for choice in resolve_instruments(instruments)]
    config = NSynthBuildConfig(instruments=instruments, pitches=parse_pitch_range(ARGS.pitches),
                               velocities=parse_int_list(ARGS.velocities, "--velocities", 1, 127))
    report = build_nsynth(ARGS.data, config, workers=1, progress=False,
                          command="benchmarks/sing_losses.py")
    print(f"data: {ARGS.data} ({', '.join(names)}; splits {report.manifest['splits']})")
    return ARGS.data


@torch.inference_mode()
def stft_side_loss(run_dir: Path, stage: str, data: Path) -> float:
    """Held-out log-STFT loss (SING's, L1, eps 1) of a finished stage's model."""
    checkpoint = load_checkpoint(run_dir / "stages" / stage / "final", system="note")
    model = NoteModel.from_checkpoint(checkpoint)
    sing: Sing = model.sing
    source = describe_data(data, checkpoint.config["data"]["split_mode"])
    valid = SingNotes(list_notes(source, "valid"), model.table, sing.config.n_samples)
    loader = DataLoader(Subset(valid, spread_subset(len(valid), ARGS.validate_notes)), batch_size=8)
    loss = LogSpectralLoss("stft", distance="l1", eps=1.0)
    total, count = 0.0, 0
    for batch in loader:
        wave = batch["audio"]
        if stage == "autoencoder":
            output = sing.autoencode(wave)
        else:
            output = sing.synthesize_padded(batch["instrument"], batch["pitch"], batch["velocity"])
        total += loss(output, sing.reconstruction_target(wave)).item() * len(wave)
        count += len(wave)
    return total / max(count, 1)


def main() -> None:
    torch.set_num_threads(ARGS.threads)
    data = build_data()
    stages = [s.strip() for s in ARGS.stages.split(",") if s.strip()]
    overrides = parse_overrides(ARGS.sets)
    out_root = ARGS.out or Path(tempfile.mkdtemp(prefix="sing-losses-"))
    rows = []
    for activation in [a.strip() for a in ARGS.activations.split(",") if a.strip()]:
        for loss_name in [x.strip() for x in ARGS.losses.split(",") if x.strip()]:
            run_dir = out_root / f"{activation}-{loss_name}"
            print(f"training {activation} / {loss_name} ...", flush=True)
            report = train_note(
                data, run_dir, preset="cpu",
                # the seed trained each spectral loss from the first batch (the cpu preset's
                # waveform MSE and warm-up are off here unless --set asks for them)
                overrides={"autoencoder_warmup_batches": 0, "autoencoder_loss": "spectral",
                           "conv_init": "default", "conv_synthesis": True, "harmonic_partials": 0,
                           "finetune_loss": "spectral", **overrides,
                           "activation": activation, "loss_transform": loss_name},
                stages=stages, max_steps_per_stage=ARGS.steps,
                max_minutes_per_stage=ARGS.minutes, seed=ARGS.seed,
                validate_notes=ARGS.validate_notes, evaluate_notes=0, progress=False,
                command="benchmarks/sing_losses.py",
            )
            for stage in report.stages:
                side = stft_side_loss(run_dir, stage.stage, data) if stage.stage != "sequence" \
                    else float("nan")
                rows.append((activation, loss_name, stage, side))
    print()
    print(f"SING, cpu preset{' + ' + ', '.join(ARGS.sets) if ARGS.sets else ''}; {ARGS.steps} "
          f"batches per stage; held-out = {ARGS.validate_notes} validation notes; runs in {out_root}")
    print(f"{'activation':<11}{'loss':<6}{'stage':<13}{'batches':>8}{'start':>10}{'final':>10}"
          f"{'change':>9}  {'moved':<6}{'lowered':<8}{'STFT side loss':>15}")
    stuck, raised = [], []
    for activation, loss_name, stage, side in rows:
        start, final = stage.initial_val_loss, stage.val_loss
        change = relative_change(start, final)
        moved, lowered = abs(change) > ARGS.moved_threshold, change < -ARGS.moved_threshold
        if not moved:
            stuck.append(f"{activation}/{loss_name}/{stage.stage}")
        elif not lowered:
            raised.append(f"{activation}/{loss_name}/{stage.stage}")
        side_text = "-" if side != side else f"{side:.4f}"
        print(f"{activation:<11}{loss_name:<6}{stage.stage:<13}{stage.steps:>8}{start:>10.4g}"
              f"{final:>10.4g}{100 * change:>8.1f}%  {'yes' if moved else 'NO':<6}"
              f"{'yes' if lowered else 'no':<8}{side_text:>15}")
    print("every run moved from its start" if not stuck else f"did NOT move: {', '.join(stuck)}")
    if raised:
        print(f"moved but did not lower the held-out loss: {', '.join(raised)} "
              "(too few steps, or a learning rate too high for that loss)")
    if any(n == "cqt" and s.initial_val_loss < 1e-3 for _, n, s, _ in rows):
        print("note: CQT energies are ~200x below the STFT's, so with loss_eps = 1 the log floors "
              "most bins and the CQT loss is tiny; --set loss_eps=0.01 gives it a usable range")


def relative_change(start: float, final: float) -> float:
    """(final - start) / |start|, NaN when start is NaN or 0."""
    if start != start or start == 0:
        return float("nan")
    return (final - start) / abs(start)


if __name__ == "__main__":
    main()
