"""`orchestrion --help`: fast, whole at 80 columns, and listing only commands that exist."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from orchestrion.cli import RESERVED_COMMANDS, app

runner = CliRunner()
WIDTH = 80


def command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every command and group under `command`, with the words that reach it (hidden ones left out)."""
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        if not sub.hidden:
            found += command_paths(sub, (*path, name))
    return found


ALL_COMMANDS = command_paths(get_command(app))


@pytest.mark.parametrize(("path", "command"), ALL_COMMANDS, ids=[" ".join(p) or "root" for p, _ in ALL_COMMANDS])
def test_every_help_fits_80_columns_whole(path, command):
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(WIDTH)}, terminal_width=WIDTH)
    assert result.exit_code == 0, result.output
    text = result.output
    assert max(len(line) for line in text.splitlines()) <= WIDTH, text
    assert "…" not in text, text  # no option name cut short
    cut = [line for line in text.splitlines() if line.rstrip().endswith("...") and not line.startswith("Usage")]
    assert not cut, cut  # no command summary cut short
    for param in command.params:
        for name in (*param.opts, *param.secondary_opts):
            if name.startswith("--"):
                assert name in text, (name, text)


def test_help_lists_no_planned_command_but_names_them_as_planned():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": str(WIDTH)})
    listed = {line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line.startswith("  ")}
    assert "render" in listed and "note" in listed
    assert not listed & set(RESERVED_COMMANDS), listed
    assert f"Planned, not in this release yet: {', '.join(RESERVED_COMMANDS)}." in " ".join(result.output.split())


@pytest.mark.parametrize("name", sorted(RESERVED_COMMANDS))
def test_a_planned_command_says_it_is_not_here_yet(name):
    result = runner.invoke(app, [name, "anything"])
    assert result.exit_code == 2 and "is not in orchestrion" in result.output


TORCH_FREE = textwrap.dedent("""
    import sys
    from orchestrion.cli import app
    try:
        app(sys.argv[1:], prog_name="orchestrion")
    except SystemExit:
        pass
    heavy = sorted(m for m in ("torch", "lightning", "numpy", "librosa") if m in sys.modules)
    print("heavy:", ",".join(heavy))
""")


@pytest.mark.parametrize("args", [["--help"], ["version"], ["render", "--help"], ["note", "--help"],
                                  ["train", "render", "--help"], ["data", "urmp", "--help"]])
def test_help_and_version_do_not_import_torch(args):
    proc = subprocess.run([sys.executable, "-c", TORCH_FREE, *args], capture_output=True, text=True,
                          timeout=60, check=True)
    assert proc.stdout.strip().splitlines()[-1] == "heavy:", proc.stdout
