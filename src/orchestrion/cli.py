"""`orchestrion <command>`: one command line for every system."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from orchestrion import __version__
from orchestrion.errors import ConfigError, OrchestrionError, about_file

RESERVED_COMMANDS = {
    "transfer": "Timbre transfer between instruments",
    "morph": "Interpolate between two sounds",
    "compose": "Write new music (VAE / GAN) as MIDI",
    "serve": "The web page",
}
"""Planned commands: hidden from `--help` (its epilog lists them); running one says it is not here yet."""


# Plain help (rich_markup_mode=None): click wraps long option names instead of cutting
# them (`--max-minutes-per-…`), so every command's help fits 80 columns whole.
PLAIN_HELP = {"rich_markup_mode": None}

app = typer.Typer(
    name="orchestrion",
    help="Neural music synthesis: score to audio, and notes.",
    epilog=f"Planned, not in this release yet: {', '.join(RESERVED_COMMANDS)}.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    **PLAIN_HELP,
)
console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(command: F) -> F:
    """Turn our errors into one line on stderr and exit code 1 (no traceback)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except OrchestrionError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _positive(name: str, value: int) -> int:
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


@app.command()
def version() -> None:
    """Print the orchestrion version."""
    print(__version__)


@app.command()
@reports_errors
def spec(
    audio: Annotated[Path, typer.Argument(help="Input audio (WAV, FLAC, AIFF, OGG).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG to write.")],
    n_fft: Annotated[int, typer.Option(help="STFT size.")] = 1024,
    hop: Annotated[int, typer.Option(help="STFT hop in samples.")] = 256,
    sr: Annotated[int | None, typer.Option(help="Resample to this rate (Hz) first.")] = None,
) -> None:
    """Draw the spectrogram of AUDIO (dB relative to its peak) as a PNG."""
    from orchestrion.audio.io import load_audio
    from orchestrion.audio.resynth import power_db
    from orchestrion.plots import save_spectrogram_png

    wave, sample_rate = load_audio(audio, sample_rate=sr)
    with about_file(audio):
        db = power_db(wave, _positive("--n-fft", n_fft), _positive("--hop", hop))
    save_spectrogram_png(output, db, sample_rate, hop, title=audio.name)
    print(f"wrote {output} ({db.shape[0]} bins x {db.shape[1]} frames)")


@app.command(short_help="Rebuild the phase of AUDIO from its STFT magnitude.")
@reports_errors
def resynth(
    audio: Annotated[Path, typer.Argument(help="Input audio.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="WAV to write.")],
    iters: Annotated[int, typer.Option(help="Griffin-Lim iterations.")] = 32,
    n_fft: Annotated[int, typer.Option(help="STFT size.")] = 1024,
    hop: Annotated[int, typer.Option(help="STFT hop in samples.")] = 256,
    sr: Annotated[int | None, typer.Option(help="Resample to this rate (Hz) first.")] = None,
) -> None:
    """Keep only the STFT magnitude of AUDIO, rebuild the phase (Fast Griffin-Lim), write a WAV."""
    from orchestrion.audio.io import load_audio, save_audio
    from orchestrion.audio.resynth import resynthesize

    if iters < 0:
        raise ConfigError(f"--iters must be >= 0, got {iters}")
    wave, sample_rate = load_audio(audio, sample_rate=sr)
    with about_file(audio):
        result = resynthesize(wave, _positive("--n-fft", n_fft), _positive("--hop", hop), iters)
    save_audio(output, result.wave, sample_rate)
    print(f"wrote {output}: {len(result.wave) / sample_rate:.2f} s at {sample_rate} Hz, "
          f"spectral convergence {result.spectral_convergence:.4f} after {iters} iterations")


@app.command(short_help="Render a score with FluidSynth, draw it, resynthesise it.")
@reports_errors
def demo(
    midi: Annotated[Path | None, typer.Argument(help="MIDI score (default: the bundled chorale).")] = None,
    output_dir: Annotated[Path, typer.Option("-o", "--output-dir", help="Folder for the results.")] = Path("demo"),
    sr: Annotated[int, typer.Option(help="Sample rate in Hz.")] = 16000,
    iters: Annotated[int, typer.Option(help="Griffin-Lim iterations.")] = 32,
    soundfont: Annotated[Path | None, typer.Option(help=".sf2/.sf3 SoundFont (default FluidR3_GM).")] = None,
) -> None:
    """Render a score with FluidSynth, draw its spectrogram, and resynthesise it from the magnitude."""
    from orchestrion.demo import run_demo

    for line in run_demo(midi, output_dir, sample_rate=sr, n_iter=iters, soundfont=soundfont):
        print(line)


def _reserved(name: str, what: str) -> None:
    @app.command(name=name, help=f"{what} (planned, not in this release yet).", hidden=True,
                 context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def _command() -> None:
        console.print(f"[bold red]error:[/] `orchestrion {name}` is not in orchestrion {__version__} yet",
                      highlight=False)
        raise typer.Exit(2)


for _name, _what in RESERVED_COMMANDS.items():
    _reserved(_name, _what)


# Groups every system adds its own subcommand to (`train render`, `train note`, ...).
train_app = typer.Typer(help="Train a model from a preset.", no_args_is_help=True, **PLAIN_HELP)
evaluate_app = typer.Typer(help="Evaluate a model.", no_args_is_help=True, **PLAIN_HELP)
app.add_typer(train_app, name="train")
app.add_typer(evaluate_app, name="evaluate")

from orchestrion.data.commands import register as _register_data  # noqa: E402

_register_data(app, reports_errors)

from orchestrion.systems.organ.commands import register as _register_render  # noqa: E402

_register_render(app, reports_errors, train=train_app, evaluate=evaluate_app)

from orchestrion.systems.sing.commands import register as _register_note  # noqa: E402

_register_note(app, reports_errors, train=train_app, evaluate=evaluate_app)

from orchestrion.metrics.judge_commands import register as _register_judge  # noqa: E402

_register_judge(reports_errors, train=train_app)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
