"""Checks shared by the command-line tests."""

from __future__ import annotations

from pathlib import Path

from typer.testing import Result


def assert_clean_failure(result: Result, out_dir: Path, *needles: str) -> None:
    """Exit 1, one line naming the problem, no traceback, nothing left in out_dir."""
    assert result.exit_code == 1, result.output
    text = result.output.strip()
    assert "Traceback" not in text
    assert len(text.splitlines()) == 1, text
    for needle in needles:
        assert needle in text, text
    leftovers = [p.name for p in out_dir.iterdir()] if out_dir.exists() else []
    assert leftovers == [], leftovers
