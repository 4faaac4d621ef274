"""`orchestrion train judge`: train the instrument judge on `orchestrion data judge` stems."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer


def train_judge_command(
    data: Annotated[Path, typer.Option("--data", help="An `orchestrion data judge` folder.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the trained judge.")],
    preset: Annotated[str, typer.Option(help="cpu (the shipped judge) or tiny (a smoke test).")] = "cpu",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Train the instrument judge from scratch; print its ceiling on held-out chunks."""
    from orchestrion.metrics.judge_train import train_judge

    command = "orchestrion " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    ceiling = train_judge(data, out, preset=preset, command=command, progress=not quiet)
    for split, scores in ceiling.items():
        print(f"ceiling {split}: macro accuracy {scores.macro_accuracy:.3f} on {scores.n_chunks} real chunks")
    print(f"judge written to {out}")


def register(reports_errors: Callable[[Callable[..., Any]], Callable[..., Any]], *, train: typer.Typer) -> None:
    """Attach `judge` to the `train` group."""
    train.command("judge", short_help="Train the instrument judge; print its ceiling.")(
        reports_errors(train_judge_command))
