"""One exception type per kind of bad input; each message names the file and the problem."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


class OrchestrionError(Exception):
    """Base of every error orchestrion raises for bad input; str() is one readable line."""

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.problem = problem
        self.path = None if path is None else Path(path)
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


class InputFileNotFoundError(OrchestrionError):
    """An input file does not exist."""


class AudioReadError(OrchestrionError):
    """An audio file cannot be decoded (corrupt, unsupported or not audio at all)."""


class NonFiniteAudioError(OrchestrionError):
    """Audio contains NaN or infinite samples."""


class AudioTooShortError(OrchestrionError):
    """Audio is shorter than the transform (e.g. one STFT window) needs."""


class SampleRateError(OrchestrionError):
    """Audio has a sample rate other than the one required."""


class MidiReadError(OrchestrionError):
    """A MIDI file cannot be parsed or holds invalid data."""


class EmptyScoreError(OrchestrionError):
    """A score holds no playable (non-drum) notes."""


class DrumOnlyScoreError(EmptyScoreError):
    """A score holds drum notes (MIDI channel 10) and no pitched ones."""


class ConfigError(OrchestrionError):
    """An argument or configuration value is out of its valid range."""


class DatasetError(OrchestrionError):
    """A dataset entry is malformed: a missing key, a bad row, unreadable or wrong audio.

    The message names the file and, for text formats, the 1-based line number, as
    ``path:line: problem``, so it can be opened straight in an editor.
    """

    def __init__(self, problem: str, path: str | Path | None = None, line: int | None = None) -> None:
        super().__init__(problem, path)
        self.line = line
        if path is not None and line is not None:
            Exception.__init__(self, f"{self.path}:{line}: {problem}")


@contextlib.contextmanager
def about_file(path: str | Path) -> Iterator[None]:
    """Name `path` in any OrchestrionError raised inside the block that names no file yet."""
    try:
        yield
    except OrchestrionError as exc:
        if exc.path is None:
            raise type(exc)(exc.problem, path) from exc
        raise
