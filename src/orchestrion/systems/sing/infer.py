"""Notes from a trained SING model: `NoteModel.from_pretrained` and `generate_notes`.

`generate_notes` is the one inference function the CLI (``orchestrion note``) and the web
page share. Requests are ``(instrument name, MIDI pitch, MIDI velocity)``; every request is
checked before anything is generated, so a bad one costs no work and writes no file.

Examples
--------
>>> model = NoteModel.from_pretrained("note-cpu")                         # doctest: +SKIP
>>> waves = generate_notes(model, [("flute", 67, 100), ("violin", 60, 80)])  # doctest: +SKIP
>>> waves.shape                                                            # doctest: +SKIP
(2, 64000)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from orchestrion.checkpoints import (
    ASSETS_DIR,
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    load_state_into,
)
from orchestrion.errors import ConfigError, DatasetError
from orchestrion.files import require_file
from orchestrion.systems.sing.data import InstrumentEntry, InstrumentTable
from orchestrion.systems.sing.model import GENERATION_UNUSED, Sing
from orchestrion.systems.sing.presets import SingConfig, config_of

SYSTEM = "note"
DEFAULT_MODEL = "note-cpu"
"""The shipped model `orchestrion note` uses unless told otherwise."""
MIDI_PITCHES = range(0, 128)
MIDI_VELOCITIES = range(1, 128)


class NoteRangeWarning(UserWarning):
    """A requested note lies outside what the model was trained on (it still plays)."""


@dataclass(frozen=True)
class NoteRequest:
    """One note to generate: instrument name (as the model knows it), MIDI pitch and velocity."""

    instrument: str
    pitch: int
    velocity: int


@dataclass(frozen=True)
class ResolvedNote:
    """A checked request: the model's instrument entry, pitch and velocity."""

    entry: InstrumentEntry
    pitch: int
    velocity: int

    @property
    def file_name(self) -> str:
        """NSynth-style ``<instrument>-<pitch:03d>-<velocity:03d>.wav``."""
        return note_file_name(self.entry.file_stem, self.pitch, self.velocity)


def note_file_name(instrument: str, pitch: int, velocity: int) -> str:
    """``flute-067-100.wav`` (NSynth's ``note_str`` naming; spaces in names become ``_``)."""
    return f"{instrument.replace(' ', '_')}-{pitch:03d}-{velocity:03d}.wav"


class NoteModel:
    """A trained SING model with its instrument table, ready to generate notes.

    Parameters
    ----------
    sing : the network (put in eval mode here).
    table : the model's instruments: names, ids, trained pitches and velocities.
    card : the model card text.
    path : where the model was loaded from (or will be exported to).
    info : the rest of the checkpoint's config (data, training, evaluation).
    """

    def __init__(self, sing: Sing, table: InstrumentTable, card: str = "",
                 path: Path | None = None, info: dict[str, Any] | None = None) -> None:
        if len(table) > sing.config.n_instruments:
            raise ConfigError(f"the instrument table lists {len(table)} instruments but the model "
                              f"has {sing.config.n_instruments} instrument embeddings")
        self.sing = sing.eval()
        self.table = table
        self.card = card
        self.path = path
        self.info = dict(info or {})

    @property
    def config(self) -> SingConfig:
        return self.sing.config

    @property
    def sample_rate(self) -> int:
        """Output sample rate in Hz (16,000)."""
        return self.config.sample_rate

    @property
    def n_samples(self) -> int:
        """Samples per generated note (64,000 = 4 s for NSynth-trained models)."""
        return self.config.n_samples

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> NoteModel:
        """Build the model a loaded `note` checkpoint describes and load its weights."""
        try:
            config = config_of(checkpoint.config)
            table = InstrumentTable.from_dict(checkpoint.config)
        except (KeyError, TypeError, ConfigError) as exc:
            problem = exc.problem if isinstance(exc, ConfigError) else f"missing {exc}"
            raise CheckpointError(f"not a usable note model config ({problem})",
                                  checkpoint.path) from None
        sing = Sing(config)
        load_state_into(sing, checkpoint, skip=GENERATION_UNUSED)  # shipped models omit them
        info = {k: v for k, v in checkpoint.config.items() if k not in ("sing", "sing_training", "instruments")}
        return cls(sing, table, checkpoint.card, checkpoint.path, info)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = DEFAULT_MODEL) -> NoteModel:
        """Load a shipped model by name (``"note-cpu"``) or a model folder by path.

        Raises
        ------
        CheckpointError
            If the model is not there, is damaged, or belongs to another system.
        """
        try:
            checkpoint = load_checkpoint(name_or_path, system=SYSTEM)
        except CheckpointError as exc:
            shipped = ASSETS_DIR / DEFAULT_MODEL
            if str(name_or_path) == DEFAULT_MODEL and not shipped.exists() \
                    and not Path(DEFAULT_MODEL).exists():
                raise CheckpointError(
                    f"the default model {DEFAULT_MODEL!r} is not shipped with this install; "
                    "train one with `orchestrion train note` and pass --model <its model folder>"
                ) from exc
            raise
        return cls.from_checkpoint(checkpoint)

    def resolve(self, requests: Sequence[NoteRequest | tuple[str, int, int]]) -> list[ResolvedNote]:
        """Check every request; warn (NoteRangeWarning) about notes the model never trained on.

        Raises
        ------
        ConfigError
            For an unknown instrument (listing the model's), a pitch outside 0-127 or a
            velocity outside 1-127.
        """
        resolved = []
        for request in requests:
            instrument, pitch, velocity = (request.instrument, request.pitch, request.velocity) \
                if isinstance(request, NoteRequest) else request
            entry = self.table.lookup(instrument)
            pitch, velocity = _whole(pitch, "pitch"), _whole(velocity, "velocity")
            if pitch not in MIDI_PITCHES:
                raise ConfigError(f"pitch {pitch} is outside the MIDI range 0-127")
            if velocity not in MIDI_VELOCITIES:
                raise ConfigError(f"velocity {velocity} is outside the MIDI range 1-127")
            resolved.append(ResolvedNote(entry, pitch, velocity))
        self._warn_untrained(resolved)
        return resolved

    def _warn_untrained(self, notes: Sequence[ResolvedNote]) -> None:
        outside: dict[str, set[int]] = {}
        untrained_pitches: set[int] = set()
        known_pitches = self.table.all_train_pitches()
        for note in notes:
            if not note.entry.lowest_pitch <= note.pitch <= note.entry.highest_pitch:
                outside.setdefault(note.entry.display_name, set()).add(note.pitch)
            elif note.pitch not in known_pitches:
                untrained_pitches.add(note.pitch)
        for name, pitches in outside.items():
            entry = self.table.lookup(name)
            warnings.warn(
                f"{name}: pitch {', '.join(map(str, sorted(pitches)))} lies outside its trained "
                f"range {entry.lowest_pitch}-{entry.highest_pitch}; expect a poor note",
                NoteRangeWarning, stacklevel=3)
        if untrained_pitches:
            if self.config.harmonic_partials:
                why = ("its partials follow the requested pitch; the timbre is interpolated "
                       "between trained pitches")
            elif self.config.pitch_encoding == "continuous":
                why = "the model must interpolate between trained pitches; expect a poor note"
            else:
                why = "its pitch embedding is untrained; expect a poor note"
            warnings.warn(
                f"pitch {', '.join(map(str, sorted(untrained_pitches)))} was never in the training "
                f"data of any instrument ({why})",
                NoteRangeWarning, stacklevel=3)
        trained = self.table.train_velocities
        softest, loudest = (min(trained), max(trained)) if trained else (1, 127)
        beyond = sorted({n.velocity for n in notes if not softest <= n.velocity <= loudest})
        if beyond:
            warnings.warn(
                f"velocity {', '.join(map(str, beyond))} lies outside the trained velocities "
                f"{softest}-{loudest}; it plays as the nearest of them",
                NoteRangeWarning, stacklevel=3)


def velocity_blend(velocity: torch.Tensor, trained: Sequence[int]
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(softer, louder, fraction): the trained velocities around each of `velocity` (B,)
    and how far it lies from the softer one (0 .. 1); clamped outside the trained range.

    A trained velocity is its own softer and louder neighbour, with fraction 0.
    """
    points = torch.tensor(sorted(set(trained)), dtype=torch.float64, device=velocity.device)
    value = velocity.to(torch.float64).clamp(float(points[0]), float(points[-1]))
    upper = torch.searchsorted(points, value).clamp(max=len(points) - 1)
    lower = torch.where(points[upper] == value, upper, (upper - 1).clamp(min=0))
    span = (points[upper] - points[lower]).clamp(min=1.0)
    fraction = (value - points[lower]) / span
    return points[lower].long(), points[upper].long(), fraction


def generate_latent(model: NoteModel, instrument: torch.Tensor, pitch: torch.Tensor,
                    velocity: torch.Tensor) -> torch.Tensor:
    """The LSTM's latent sequence (B, D, n_steps) for any MIDI velocity.

    SING learns one embedding per velocity it trained on (NSynth's 25, 50, 75, 100, 127);
    the others are untrained. A velocity between two trained ones gets the linear blend of
    their latent sequences, which rises in level with velocity (blending the embeddings
    themselves did not: velocity 60 came out 7 dB louder than 75); one outside the trained
    range plays as the nearest. Trained velocities give exactly the trained model's latent.
    """
    trained = model.table.train_velocities
    if not trained:
        return model.sing.generate_latent(instrument, pitch, velocity)
    softer, louder, fraction = velocity_blend(velocity, trained)
    latent = model.sing.generate_latent(instrument, pitch, softer)
    between = fraction > 0
    if bool(between.any()):
        louder_latent = model.sing.generate_latent(instrument[between], pitch[between], louder[between])
        weight = fraction[between].to(latent.dtype).view(-1, 1, 1)
        latent[between] = (1 - weight) * latent[between] + weight * louder_latent
    return latent


def _whole(value: Any, name: str) -> int:
    """`value` as an int, or ConfigError if it is not a whole number."""
    try:
        if isinstance(value, bool) or not float(value).is_integer():
            raise ValueError
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{name} must be a whole MIDI number, got {value!r}") from None


@torch.inference_mode()
def generate_notes(
    model: NoteModel,
    requests: Sequence[NoteRequest | tuple[str, int, int]],
    batch_size: int = 64,
) -> np.ndarray:
    """Generate one note per request.

    Parameters
    ----------
    model : a NoteModel.
    requests : (instrument name, MIDI pitch 0-127, MIDI velocity 1-127) each.
    batch_size : notes per forward pass (larger is faster per note, up to memory).

    Returns
    -------
    float32 array (N, n_samples) at `model.sample_rate` Hz (64,000 samples = 4 s), one row
    per request, in order. Not clipped: `orchestrion.audio.io.save_audio` clips on writing.

    Raises
    ------
    ConfigError for an unknown instrument, a pitch outside 0-127 or a velocity outside
    1-127 (before anything is generated). Notes outside an instrument's trained range warn.
    """
    if batch_size <= 0:
        raise ConfigError(f"batch size must be positive, got {batch_size}")
    notes = model.resolve(requests)
    output = np.empty((len(notes), model.n_samples), dtype=np.float32)
    device = next(model.sing.parameters()).device
    for start in range(0, len(notes), batch_size):
        chunk = notes[start : start + batch_size]
        instrument = torch.tensor([n.entry.model_id for n in chunk], device=device)
        pitch = torch.tensor([n.pitch for n in chunk], device=device)
        velocity = torch.tensor([n.velocity for n in chunk], device=device)
        latent = generate_latent(model, instrument, pitch, velocity)
        waves = model.sing.crop_output(model.sing.decoder(latent, pitch))
        output[start : start + len(chunk)] = waves.float().cpu().numpy()
    return output


def read_note_list(path: str | Path) -> list[NoteRequest]:
    """Read a note list: one ``instrument pitch velocity`` per line.

    Blank lines and ``#`` comments are skipped; an instrument name may hold spaces
    ("double bass 40 100"): the last two words are pitch and velocity.

    Raises
    ------
    DatasetError
        Naming the file and line of a malformed line; InputFileNotFoundError if missing.
    """
    path = require_file(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read the note list ({exc})", path) from None
    requests = []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) < 3:
            raise DatasetError(f"expected 'instrument pitch velocity', got {line.strip()!r}",
                               path, number)
        try:
            pitch, velocity = int(words[-2]), int(words[-1])
        except ValueError:
            raise DatasetError(f"pitch and velocity must be whole numbers, got {line.strip()!r}",
                               path, number) from None
        requests.append(NoteRequest(" ".join(words[:-2]), pitch, velocity))
    if not requests:
        raise DatasetError("the note list holds no notes", path)
    return requests
