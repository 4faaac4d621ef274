"""Command line of the `note` system: `orchestrion note`, `train note`, `evaluate note`.

``orchestrion note`` has three forms::

    orchestrion note --instrument flute --pitch 67 --velocity 100 -o g4.wav
    orchestrion note --list notes.txt -o OUTDIR      # OUTDIR/<instrument>-<ppp>-<vvv>.wav
    orchestrion note --list-instruments              # "name lowest-highest" per line
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from orchestrion.errors import ConfigError

console = Console(stderr=True)
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Shipped model name or model folder.")]


def parse_overrides(assignments: list[str] | None) -> dict[str, Any]:
    """``["activation=elu", "channels=256"]`` -> SingConfig overrides, typed by each field.

    Raises
    ------
    ConfigError for a malformed assignment, an unknown field or a value of the wrong type.
    """
    from orchestrion.systems.sing.presets import SingConfig

    fields = {f.name: f for f in dataclasses.fields(SingConfig)}
    overrides: dict[str, Any] = {}
    for assignment in assignments or []:
        key, sep, text = assignment.partition("=")
        key, text = key.strip().replace("-", "_"), text.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {assignment!r}")
        if key not in fields:
            raise ConfigError(f"--set {key}: SING config has no such field; known fields: "
                              f"{', '.join(sorted(fields))}")
        kind = type(fields[key].default)
        try:
            if kind is bool:
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value: Any = text.lower() in ("true", "1", "yes")
            elif kind is int:
                value = int(text)
            elif kind is float:
                value = float(text)
            else:
                value = text
        except ValueError:
            raise ConfigError(f"--set {key}: expected a {kind.__name__}, got {text!r}") from None
        overrides[key] = value
    return overrides


def _report_warnings(caught: list[warnings.WarningMessage]) -> None:
    for warning in caught:
        console.print(f"[yellow]warning:[/] {warning.message}", highlight=False, soft_wrap=True)


def _split_names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def note_command(
    instrument: Annotated[str | None, typer.Option("--instrument", "-i", help="Instrument name (see --list-instruments) or General MIDI number.")] = None,
    pitch: Annotated[int | None, typer.Option("--pitch", "-p", help="MIDI pitch 0-127 (60 = C4).")] = None,
    velocity: Annotated[int, typer.Option("--velocity", "-v", help="MIDI velocity 1-127.")] = 100,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="WAV to write (single note), or folder (--list).")] = None,
    note_list: Annotated[Path | None, typer.Option("--list", help="Text file of 'instrument pitch velocity' lines.")] = None,
    list_instruments: Annotated[bool, typer.Option("--list-instruments", help="Print the model's instruments and pitch ranges.")] = False,
    model: ModelOpt = "note-cpu",
    sr: Annotated[int | None, typer.Option("--sr", help="Output sample rate in Hz (default: the model's).")] = None,
    batch_size: Annotated[int, typer.Option(help="Notes per forward pass.")] = 64,
) -> None:
    """Generate 4 s notes (16 kHz) with SING: one note, a list of notes, or list the instruments."""
    from orchestrion.audio.io import check_output_rate, resample, save_audio
    from orchestrion.systems.sing.infer import NoteModel, NoteRequest, generate_notes, read_note_list

    forms = [list_instruments, note_list is not None, instrument is not None or pitch is not None]
    if sum(forms) != 1:
        raise ConfigError("give either --instrument and --pitch, or --list FILE -o DIR, "
                          "or --list-instruments")
    if note_list is not None and output is None:
        raise ConfigError("--list needs -o OUTDIR, the folder for the notes")
    if forms[2] and (instrument is None or pitch is None):
        raise ConfigError("a single note needs both --instrument and --pitch")
    check_output_rate(sr)
    requests = read_note_list(note_list) if note_list is not None else None
    note_model = NoteModel.from_pretrained(model)
    if list_instruments:
        for entry in note_model.table:
            print(f"{entry.display_name} {entry.lowest_pitch}-{entry.highest_pitch}")
        return
    if requests is None:
        requests = [NoteRequest(str(instrument), int(pitch), int(velocity))]  # type: ignore[arg-type]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        notes = note_model.resolve(requests)
    _report_warnings(caught)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # already reported
        waves = generate_notes(note_model, requests, batch_size=batch_size)
    rate = note_model.sample_rate
    if sr is not None and sr != rate:
        waves, rate = resample(waves, rate, sr), sr  # (notes, samples): soxr resamples each row
    if note_list is None:
        path = output if output is not None else Path(notes[0].file_name)
        save_audio(path, waves[0], rate)
        print(f"wrote {path} ({waves.shape[1] / rate:.2f} s at {rate} Hz)")
        return
    out_dir = Path(str(output))  # --list requires -o (checked above)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()
    for index, note in enumerate(notes):
        if note.file_name not in written:  # a repeated line is written once
            save_audio(out_dir / note.file_name, waves[index], rate)
            written.add(note.file_name)
    print(f"wrote {len(written)} notes to {out_dir} ({waves.shape[1] / rate:.2f} s each at {rate} Hz)")


def train_note_command(
    data: Annotated[Path, typer.Option("--data", help="NSynth-format folder (orchestrion build or real NSynth).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoints, logs and the exported model/.")],
    preset: Annotated[str | None, typer.Option(help="cpu or paper (a continued run keeps its own).")] = None,
    stages: Annotated[str, typer.Option(help="Comma list of stages, in SING's order.")] = "autoencoder,sequence,finetune",
    max_minutes_per_stage: Annotated[float | None, typer.Option(help="Stop each stage after this many minutes of this run (with --resume, the time before it does not count).")] = None,
    max_epochs_per_stage: Annotated[int | None, typer.Option(help="Cap on each stage's epochs.")] = None,
    max_steps_per_stage: Annotated[int | None, typer.Option(help="Cap on each stage's batches.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out (finished stages are skipped).")] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Config override key=value (repeatable).")] = None,
    instruments: Annotated[str | None, typer.Option(help="Comma list: names, instrument_strs or ids.")] = None,
    split_mode: Annotated[str, typer.Option(help="auto, folders or pairs ((instrument, pitch) 80/10/10).")] = "auto",
    checkpoint_minutes: Annotated[float, typer.Option(help="Minutes between checkpoints (also saved at the end, and when Ctrl-C or SIGTERM stops the run).")] = 5.0,  # == training.DEFAULT_CHECKPOINT_MINUTES
    evaluate_notes: Annotated[int, typer.Option(help="Test notes to evaluate for the model card (0: none).")] = 64,
    workers: Annotated[int, typer.Option("--workers", "-j", help="DataLoader worker processes.")] = 0,
    devices: Annotated[int, typer.Option(help="Devices (Lightning).")] = 1,
    strategy: Annotated[str, typer.Option(help="Lightning strategy, e.g. ddp.")] = "auto",
    num_nodes: Annotated[int, typer.Option("--num-nodes", help="Machines (torchrun or SLURM starts the processes).")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    init_from: Annotated[str | None, typer.Option(
        "--init-from", help="Start a new run from a note model's weights (a model folder or shipped name).")] = None,
) -> None:
    """Train SING (autoencoder -> LSTM -> fine-tuning) and export a model folder."""
    from orchestrion.data.build import current_command
    from orchestrion.systems.sing.train import train_note

    report = train_note(
        data, out, preset=preset, overrides=parse_overrides(set_), stages=_split_names(stages) or [],
        max_minutes_per_stage=max_minutes_per_stage, max_epochs_per_stage=max_epochs_per_stage,
        max_steps_per_stage=max_steps_per_stage, seed=seed, resume=resume,
        checkpoint_minutes=checkpoint_minutes, instruments=_split_names(instruments),
        split_mode=split_mode, evaluate_notes=evaluate_notes, num_workers=workers, devices=devices,
        strategy=strategy, progress=not quiet, command=current_command(), init_from=init_from,
        num_nodes=num_nodes,
    )
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank == 0:  # the other processes of a multi-device run say nothing
        print(report.format())


def evaluate_note_command(
    data: Annotated[Path, typer.Option("--data", help="NSynth-format folder.")],
    model: ModelOpt = "note-cpu",
    split: Annotated[str, typer.Option(help="train, valid or test.")] = "test",
    limit: Annotated[int | None, typer.Option(help="At most this many notes (spread evenly).")] = None,
    tolerance_cents: Annotated[float, typer.Option(help="Pitch accuracy tolerance in cents.")] = 50.0,
    reference: Annotated[bool, typer.Option(help="Also measure pyin on the recorded notes.")] = True,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the figures as JSON.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Spectral loss, waveform L1 and pitch accuracy (pyin, 50 cents) on held-out notes."""
    from orchestrion.files import atomic_output
    from orchestrion.systems.sing.evaluate import evaluate_note

    result = evaluate_note(model, data, split=split, limit=limit, tolerance_cents=tolerance_cents,
                           reference=reference, progress=not quiet)
    print(result.format())
    if json_out is not None:
        with atomic_output(json_out) as tmp:
            tmp.write_text(json.dumps(result.to_dict(), indent=1) + "\n")


def register(
    app: typer.Typer,
    reports_errors: Callable[[Callable[..., Any]], Callable[..., Any]],
    *,
    train: typer.Typer | None = None,
    evaluate: typer.Typer | None = None,
) -> None:
    """Attach `note` to the root app, and `note` to the `train` and `evaluate` groups."""
    app.command("note", short_help="Generate notes with SING, or list its instruments.")(reports_errors(note_command))
    if train is not None:
        train.command("note", short_help="Train SING in its three stages, export a model folder.")(reports_errors(train_note_command))
    if evaluate is not None:
        evaluate.command("note", short_help="Spectral loss, waveform L1, pitch accuracy on held-out notes.")(reports_errors(evaluate_note_command))
