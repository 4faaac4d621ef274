"""Shipped-model checkpoints: a folder of safetensors weights + config.json + MODEL_CARD.md.

config.json holds {"system": "render" | "note" | ..., "format": 1, "config": {...}} and, for a
system whose config has training-only fields, "training": {...} beside it (loading merges the
two: inference reads only what "config" holds); the card
records the metrics reached, the exact training command and the data seen. Loading never
unpickles anything, and a checkpoint of another system is refused with a clear error.

A training run's own Lightning checkpoints (``*.ckpt``) are read by
:func:`read_training_checkpoint` only: ``torch.load(weights_only=True)``, which builds
tensors and plain containers, numbers and strings and refuses every other Python object
before creating it. Pickle files (``.pt``, ``.pth``, ``.pkl``, ``.bin``) are never read.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
import tempfile
import zipfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from orchestrion.errors import OrchestrionError

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "MODEL_CARD.md"
FORMAT_VERSION = 1
ASSETS_DIR = Path(__file__).resolve().parent / "assets" / "models"
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin")
"""File endings of pickled torch or Python objects: refused as models, never read."""
HISTORY_LINE = re.compile(r"- (trained|training command|started from)( \([^)]*\))?:")
"""A card line on how its weights were made: "- trained:", "- training command (note):" ..."""


class CheckpointError(OrchestrionError):
    """A checkpoint folder is missing, incomplete, corrupt or belongs to another system."""


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: weights (CPU tensors), the system's config dict, and the card text."""

    path: Path
    system: str
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    card: str

    def history(self) -> list[str]:
        """How the model was made, from its card's header (the lines before its first
        section heading): the text of its "- trained:", "- training command:" and
        "- started from:" lines (a note in brackets may precede the colon), in order. Older
        weights' sections further down are left out."""
        header = []
        for index, line in enumerate(self.card.splitlines()):
            if index > 0 and line.startswith("#"):
                break
            header.append(line)
        return [line[2:] for line in header if HISTORY_LINE.match(line)]


def save_checkpoint(
    folder: str | Path,
    system: str,
    config: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    card: str,
    half: bool = False,
    training_fields: Collection[str] = (),
) -> Path:
    """Write weights, config and card into `folder` atomically (a temp folder renamed into place).

    `half` stores floating-point tensors as float16 (shipped models: half the size; they
    are cast back to the model's float32 parameters on loading). `training_fields` names
    the config's fields that only training reads (losses, schedules, the discriminator):
    config.json keeps them apart under "training", and "config" holds what inference needs.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
        if half:
            tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"system": system})
        model_part = {k: v for k, v in config.items() if k not in training_fields}
        document: dict[str, Any] = {"system": system, "format": FORMAT_VERSION, "config": model_part}
        if len(model_part) < len(config):
            document["training"] = {k: v for k, v in config.items() if k in training_fields}
        (tmp / CONFIG_NAME).write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
        (tmp / CARD_NAME).write_text(card)
        tmp.chmod(0o755)  # mkdtemp makes 0700 folders; a shipped model is read by everyone
        for path in tmp.iterdir():
            path.chmod(0o644)
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return folder


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """A folder path, or the name of a shipped model (e.g. "render-cpu")."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(f"refused: {path.suffix} files hold pickled Python objects and are never read; "
                              f"a model is a folder holding {WEIGHTS_NAME} and {CONFIG_NAME}", path)
    if path.is_file():
        raise CheckpointError(f"not a model folder: a model is a folder holding {WEIGHTS_NAME} and {CONFIG_NAME}",
                              path)
    shipped = ASSETS_DIR / str(name_or_path)
    if shipped.is_dir():
        return shipped
    known = sorted(p.name for p in ASSETS_DIR.iterdir()) if ASSETS_DIR.is_dir() else []
    raise CheckpointError(
        "no such model folder or shipped model" + (f" (shipped: {', '.join(known)})" if known else ""), path
    )


def load_checkpoint(name_or_path: str | Path, system: str) -> Checkpoint:
    """Load a checkpoint of `system`, refusing one of another system or a damaged one."""
    folder = resolve_checkpoint(name_or_path)
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if not config_path.is_file() or not weights_path.is_file():
        raise CheckpointError(f"not a model folder: needs {CONFIG_NAME} and {WEIGHTS_NAME}", folder)
    try:
        document = json.loads(config_path.read_text())
        found, config = document["system"], {**document.get("training", {}), **document["config"]}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"unreadable {CONFIG_NAME} ({type(exc).__name__})", config_path) from None
    if found != system:
        raise CheckpointError(f"this is a `{found}` model, not a `{system}` model", folder)
    try:
        state_dict = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"corrupt weights ({exc})", weights_path) from None
    card_path = folder / CARD_NAME
    card = card_path.read_text() if card_path.is_file() else ""
    return Checkpoint(folder, system, config, state_dict, card)


def load_state_into(module: torch.nn.Module, checkpoint: Checkpoint, skip: tuple[str, ...] = ()) -> None:
    """Load weights into `module`, turning shape/key mismatches into a CheckpointError.

    Weights whose names start with one of `skip` are neither loaded nor required: the
    module keeps its own (e.g. a part of the model that starts fresh); every other weight
    must match exactly.
    """
    state = {k: v for k, v in checkpoint.state_dict.items() if not k.startswith(skip)} if skip \
        else checkpoint.state_dict
    try:
        missing, unexpected = module.load_state_dict(state, strict=not skip)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"weights do not fit this model ({first})", checkpoint.path) from None
    misfits = sorted([k for k in missing if not k.startswith(skip)] + list(unexpected))
    if misfits:
        raise CheckpointError(f"weights do not fit this model ({misfits[0]!r} differs)", checkpoint.path)


def read_training_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """A training run's Lightning checkpoint (``last.ckpt``, ``step-*.ckpt``) as plain data.

    Read with ``torch.load(weights_only=True)``: tensors, dicts, lists, tuples, numbers and
    strings only (all our runs store); a file holding any other Python object is refused
    before that object is made, and a file that is not a torch archive is never unpickled.
    `mmap` maps the tensors instead of reading them (cheap when only the settings are needed).

    Raises
    ------
    CheckpointError
        Missing, not a torch archive, holding Python objects, or lacking a Lightning
        checkpoint's ``state_dict`` and ``hyper_parameters``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("no such training checkpoint", path)
    if not zipfile.is_zipfile(path):  # a bare pickle: refused unread
        raise CheckpointError("not a training checkpoint (not a torch archive)", path)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError:
        raise CheckpointError("refused: the file holds Python objects a training checkpoint does not hold "
                              "(it was not unpickled)", path) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"not a training checkpoint ({first})", path) from None
    if not isinstance(saved, dict) or not isinstance(saved.get("state_dict"), Mapping) \
            or not isinstance(saved.get("hyper_parameters"), Mapping):
        raise CheckpointError("not a training checkpoint (no state_dict and hyper_parameters)", path)
    return saved
