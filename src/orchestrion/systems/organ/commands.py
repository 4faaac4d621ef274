"""Command line of the render system: `orchestrion render`, `evaluate render`, `train render`.

:func:`register` attaches them to the root app and to the shared ``train`` / ``evaluate``
groups that ``orchestrion.cli`` owns (so other systems add ``train note`` etc. beside
them). Heavy imports (torch, lightning) happen inside the commands, so ``orchestrion
--help`` stays fast.
"""

from __future__ import annotations

import json
import sys
import warnings
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrion.errors import ConfigError

if TYPE_CHECKING:
    from orchestrion.systems.organ.presets import OrganConfig

DEFAULT_MODEL = (
    "render-cpu"  # == orchestrion.systems.organ.infer.DEFAULT_MODEL (not imported: no torch here)
)
DEFAULT_ITERS = 12  # == infer.DEFAULT_N_ITER
DEFAULT_PHASE_INIT = "vocoder"  # == infer.DEFAULT_PHASE_INIT
PHASE_INITS = ("vocoder", "random")  # == audio.blocks.PHASE_INITS

ItersOpt = Annotated[int, typer.Option("--iters", help="Griffin-Lim iterations.")]
PhaseInitOpt = Annotated[
    str,
    typer.Option(
        "--phase-init",
        help="Griffin-Lim's start: 'vocoder' (phase integrated from the spectral peaks) "
        "or 'random' (the seed's, which needs about 32 iterations).",
    ),
]
ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="Shipped model name, model folder, or a training run's .ckpt.")
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
PerTrackOpt = Annotated[
    bool,
    typer.Option(
        "--per-track/--mix",
        help="Render each part alone and combine them (closer to the reference, one generator "
        "pass per part), or all parts in one pass (faster).",
    ),
]
DeterministicOpt = Annotated[
    bool,
    typer.Option(
        "--deterministic/--dropout-noise",
        help="Generator dropout off (default; measured better), or on as the seed's noise source.",
    ),
]
NoiseSubtractionOpt = Annotated[
    bool,
    typer.Option(
        "--noise-subtraction/--no-noise-subtraction",
        help="Subtract the generator's empty-roll magnitude (the seed's post-processing; off: "
        "it leaves holes in quiet bins and measured worse).",
    ),
]


def _err(text: str) -> None:
    typer.echo(text, err=True)


def _print_training_settings(config: OrganConfig, classifier_only: bool = False) -> None:
    """One line as `train render` starts: the batch, rate and loss weights the run trains with
    (a continued model's own config under ``--set``, which a glance should confirm)."""
    _err(f"settings: batch {config.batch_size}, learning rate {config.learning_rate:g} ({config.lr_schedule}), "
         f"regime {config.regime}; "
         + (_classifier_draws(config) if classifier_only else _loss_weights(config)))


def _classifier_draws(config: OrganConfig) -> str:
    """``the instrument classifier alone, on real chunks (...)``: how a classifier-only run draws them."""
    how = [f"{config.classifier_part_sampling} part counts"]
    if config.classifier_remix:
        how.append(f"{config.classifier_remix:.0%} of multi-part chunks remixed across pieces")
    if config.classifier_part_gain_db:
        how.append(f"each part at +-{config.classifier_part_gain_db:g} dB")
    if config.classifier_mute_part:
        how.append(f"one part muted in {config.classifier_mute_part:.0%} of multi-part chunks")
    return f"the instrument classifier alone, on real chunks ({', '.join(how)})"


def _loss_weights(config: OrganConfig) -> str:
    """``loss weights: adversarial 1, MS-SSIM 100, ...``: the GAN's non-zero loss terms."""
    weights = {
        "adversarial": config.adversarial_weight, "MS-SSIM": config.msssim_weight, "L1": config.l1_weight,
        "spectral convergence": config.spectral_convergence_weight, "log magnitude": config.log_magnitude_weight,
        "instrument": config.instrument_weight if config.uses_classifier else 0.0,
    }
    return "loss weights: " + ", ".join(f"{name} {value:g}" for name, value in weights.items() if value)


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["key=value", ...]`` -> dict; values are read as JSON when they parse (numbers,
    true/false, null, lists), else kept as text (``encoding=binary``)."""
    overrides: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"--set takes key=value (e.g. --set base_width=8), got {item!r}")
        try:
            overrides[key] = json.loads(text)
        except json.JSONDecodeError:
            overrides[key] = text
    return overrides


def _check_phase_init(phase_init: str) -> None:
    if phase_init not in PHASE_INITS:
        raise ConfigError(f"--phase-init must be one of {', '.join(PHASE_INITS)}, got {phase_init!r}")


def _load_model(name: str, deterministic: bool = True):
    from orchestrion.checkpoints import CheckpointError
    from orchestrion.systems.organ.infer import RenderModel

    try:
        return RenderModel.from_pretrained(name, deterministic=deterministic)
    except CheckpointError as exc:
        if name == DEFAULT_MODEL and exc.path is not None and not exc.path.exists():
            raise CheckpointError(
                f"the shipped model `{DEFAULT_MODEL}` is not installed in this orchestrion; "
                "pass --model FOLDER (a model trained with `orchestrion train render`)"
            ) from None
        raise


def register(
    app: typer.Typer, reports_errors, *, train: typer.Typer, evaluate: typer.Typer
) -> None:
    """Attach `render` to the root app, `render` to the `train` and `evaluate` groups."""

    @app.command("render", short_help="Render a MIDI score to audio with the orGAN model.")
    @reports_errors
    def render(
        score: Annotated[Path, typer.Argument(help="MIDI score (.mid).")],
        output: Annotated[
            Path, typer.Option("-o", "--output", help="Audio file to write (.wav, .flac, ...).")
        ],
        model: ModelOpt = DEFAULT_MODEL,
        sr: Annotated[
            int | None,
            typer.Option("--sr", help="Output sample rate in Hz (default: the model's)."),
        ] = None,
        per_track: PerTrackOpt = True,
        iters: ItersOpt = DEFAULT_ITERS,
        phase_init: PhaseInitOpt = DEFAULT_PHASE_INIT,
        seed: Annotated[
            int, typer.Option("--seed", help="Seed of the dropout noise and the phase.")
        ] = 0,
        noise_subtraction: NoiseSubtractionOpt = False,
        deterministic: DeterministicOpt = True,
        normalize: Annotated[
            bool,
            typer.Option(
                "--normalize/--model-level",
                help="Scale the audio so its peak is 0.99 of full scale, or keep the model's "
                "own level, which follows the score's dynamics (default; about -21 dBFS "
                "for the bundled example).",
            ),
        ] = False,
        quiet: Quiet = False,
    ) -> None:
        """Render SCORE to audio with the orGAN model (score -> spectrogram -> Griffin-Lim)."""
        from orchestrion.audio.io import AUDIO_SUFFIXES, save_audio
        from orchestrion.files import require_file
        from orchestrion.systems.organ.infer import render_score

        require_file(score)
        _check_phase_init(phase_init)
        if output.suffix.lower() not in AUDIO_SUFFIXES:
            raise ConfigError(
                f"cannot write {output.suffix or 'files without a suffix'}; "
                f"use one of {', '.join(AUDIO_SUFFIXES)}",
                output,
            )
        render_model = _load_model(model, deterministic)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the result lists them; printed once below
            result = render_score(
                score,
                render_model,
                sample_rate=sr,
                per_track=per_track,
                n_iter=iters,
                phase_init=phase_init,
                seed=seed,
                noise_subtraction=noise_subtraction,
                progress=not quiet and sys.stderr.isatty(),
            )
        save_audio(output, result.audio, result.sample_rate, peak_normalize=normalize)
        for message in result.warnings:
            _err(f"warning: {message}")
        print(f"wrote {output}: {result.duration_s:.2f} s at {result.sample_rate} Hz")

    @evaluate.command("render", short_help="Spectrogram and audio figures on held-out pieces.")
    @reports_errors
    def evaluate_render_command(
        data: Annotated[Path, typer.Option("--data", help="URMP-format folder with splits.json.")],
        model: ModelOpt = DEFAULT_MODEL,
        split: Annotated[
            str, typer.Option("--split", help="Held-out split (empty test -> valid).")
        ] = "test",
        limit: Annotated[
            int | None, typer.Option("--limit", help="At most this many pieces.")
        ] = None,
        png: Annotated[
            Path | None, typer.Option("--png", help="Side-by-side spectrogram PNG to write.")
        ] = None,
        max_chunks: Annotated[
            int, typer.Option("--max-chunks", help="Chunks for Table 6.3 at most.")
        ] = 128,
        seed: Annotated[int, typer.Option("--seed", help="Seed of dropout, SWD and phase.")] = 0,
        deterministic: DeterministicOpt = True,
        per_track: PerTrackOpt = True,
        noise_subtraction: NoiseSubtractionOpt = False,
        iters: ItersOpt = DEFAULT_ITERS,
        phase_init: PhaseInitOpt = DEFAULT_PHASE_INIT,
        budget: Annotated[
            bool,
            typer.Option(
                "--budget",
                help="Also show where MS-SSIM is lost: the score with one region (level, "
                "band, partials, onsets) of the render's dB image replaced by the reference's.",
            ),
        ] = False,
        quiet: Quiet = False,
    ) -> None:
        """Table 6.3 on held-out chunks and the audio protocol on whole held-out pieces."""
        from orchestrion.systems.organ.evaluate import evaluate_render

        _check_phase_init(phase_init)
        render_model = _load_model(model, deterministic)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = evaluate_render(
                render_model,
                data,
                split=split,
                limit=limit,
                out_png=png,
                max_chunks=max_chunks,
                seed=seed,
                n_iter=iters,
                phase_init=phase_init,
                per_track=per_track,
                noise_subtraction=noise_subtraction,
                budget=budget,
                progress=not quiet and sys.stderr.isatty(),
            )
        print(report.format())

    @train.command("render", short_help="Train the orGAN render model, export a model folder.")
    @reports_errors
    def train_render_command(
        data: Annotated[Path, typer.Option("--data", help="URMP-format folder with splits.json.")],
        out: Annotated[
            Path, typer.Option("--out", help="Run folder: checkpoints/, logs/, model/.")
        ],
        preset: Annotated[
            str | None,
            typer.Option("--preset", help="cpu or paper (default: cpu, or with --init-from that model's own config)."),
        ] = None,
        max_steps: Annotated[
            int, typer.Option("--max-steps", help="Generator steps at most.")
        ] = 20_000,
        max_minutes: Annotated[
            float | None,
            typer.Option("--max-minutes", help="Stop after this many minutes of this run "
                         "(with --resume, the time before it does not count)."),
        ] = None,
        seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
        resume: Annotated[
            bool, typer.Option("--resume", help="Continue from OUT/checkpoints/last.ckpt.")
        ] = False,
        checkpoint_minutes: Annotated[
            float, typer.Option("--checkpoint-minutes", help="Save every N minutes (also at the end, "
                                "and when Ctrl-C or SIGTERM stops the run).")
        ] = 5.0,  # == orchestrion.training.DEFAULT_CHECKPOINT_MINUTES (not imported: no torch here)
        validate_every: Annotated[
            int, typer.Option("--validate-every", help="Validate every N steps.")
        ] = 500,
        devices: Annotated[
            int, typer.Option("--devices", help="Devices (processes) to train on.")
        ] = 1,
        strategy: Annotated[
            str, typer.Option("--strategy", help="Lightning strategy, e.g. ddp.")
        ] = "auto",
        num_nodes: Annotated[
            int, typer.Option("--num-nodes", help="Machines (torchrun or SLURM starts the processes).")
        ] = 1,
        workers: Annotated[
            int, typer.Option("--workers", "-j", help="Data loader worker processes.")
        ] = 0,
        overrides: Annotated[
            list[str] | None,
            typer.Option("--set", help="Preset field override key=value (repeatable)."),
        ] = None,
        init_from: Annotated[
            str | None,
            typer.Option("--init-from", help="Start from a model's weights (a shipped name such as render-cpu, or a model folder)."),
        ] = None,
        classifier_only: Annotated[
            bool,
            typer.Option("--classifier-only", help="Train only the --init-from model's instrument classifier (real chunks)."),
        ] = False,
        keep_checkpoints: Annotated[
            bool,
            typer.Option("--keep-checkpoints", help="Keep every timed checkpoint as OUT/checkpoints/step-N.ckpt "
                         "(render / evaluate --model take one)."),
        ] = False,
        quiet: Quiet = False,
    ) -> None:
        """Train the orGAN render model on URMP-format data and export a checkpoint folder."""
        from orchestrion.data.build import current_command
        from orchestrion.systems.organ.train import train_render

        for name, value in (
            ("--max-steps", max_steps),
            ("--devices", devices),
            ("--num-nodes", num_nodes),
            ("--validate-every", validate_every),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        if max_minutes is not None and not max_minutes > 0:
            raise ConfigError(f"--max-minutes must be positive, got {max_minutes}")
        if not checkpoint_minutes > 0:
            raise ConfigError(f"--checkpoint-minutes must be positive, got {checkpoint_minutes}")
        if not data.is_dir():
            raise ConfigError("--data: no such folder", data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = train_render(
                data,
                out,
                preset=preset,
                overrides=parse_overrides(overrides),
                max_steps=max_steps,
                max_minutes=max_minutes,
                seed=seed,
                resume=resume,
                checkpoint_minutes=checkpoint_minutes,
                validate_every=validate_every,
                devices=devices,
                strategy=strategy,
                num_nodes=num_nodes,
                num_workers=workers,
                command=current_command(),
                progress=not quiet,
                init_from=init_from,
                classifier_only=classifier_only,
                keep_checkpoints=keep_checkpoints,
                on_start=partial(_print_training_settings, classifier_only=classifier_only),
            )
        from lightning.pytorch.utilities import rank_zero_only

        if rank_zero_only.rank != 0:
            return  # another process of a multi-device run: the first one reports
        # ours only: Lightning's deprecation notices are not for our users
        for message in dict.fromkeys(
            str(w.message) for w in caught if "orchestrion" in (w.filename or "")
        ):
            _err(f"warning: {message}")
        metrics = ", ".join(
            f"{k.split('/', 1)[-1]} {v:.4f}" for k, v in sorted(report.metrics.items())
        )
        print(
            f"model: {report.export_dir} ({report.steps} steps, {report.minutes:.1f} min"
            + (f"; {metrics}" if metrics else "")
            + ")"
        )
        print(
            f"checkpoint: {report.out_dir / 'checkpoints' / 'last.ckpt'} (continue with --resume)"
        )
        print(f"render with: orchestrion render SCORE.mid -o OUT.wav --model {report.export_dir}")


__all__ = ["parse_overrides", "register"]
