"""No user-given file is ever unpickled: crafted pickles in every shape a user can pass to
every command that takes a model (or resumes a run) give one error line and exit 1, write
nothing, and the payload they carry never runs."""

from __future__ import annotations

import json
import os
import pickle
import re
import shlex
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from orchestrion.checkpoints import CheckpointError, read_training_checkpoint
from orchestrion.cli import app

SRC = Path(__file__).resolve().parents[1] / "src"
runner = CliRunner()


class Payload:
    """Unpickling this runs ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def _torch_archive(path: Path, marker: Path) -> Path:
    """A torch zip archive shaped like a Lightning checkpoint, one value a payload."""
    torch.save({"state_dict": {}, "hyper_parameters": {"config": Payload(marker)}, "global_step": 0}, path)
    return path


def _bare_pickle(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"state_dict": {}, "payload": Payload(marker)}))
    return path


def _folder(path: Path, marker: Path, config: str) -> Path:
    path.mkdir()
    (path / "config.json").write_text(config)
    _bare_pickle(path / "model.safetensors", marker)
    return path


def _config(system: str) -> str:
    return json.dumps({"system": system, "format": 1, "config": {}})


OTHER = {"render": "note", "note": "render"}
SHAPES: dict[str, Callable[[Path, Path, str], Path]] = {
    "ckpt archive": lambda d, m, s: _torch_archive(d / "evil.ckpt", m),
    "ckpt bare pickle": lambda d, m, s: _bare_pickle(d / "evil.ckpt", m),
    "pt": lambda d, m, s: _torch_archive(d / "evil.pt", m),
    "pth": lambda d, m, s: _bare_pickle(d / "evil.pth", m),
    "pickled safetensors": lambda d, m, s: _folder(d / "model", m, _config(s)),
    "config not json": lambda d, m, s: _folder(d / "model", m, "{not json"),
    "config of another system": lambda d, m, s: _folder(d / "model", m, _config(OTHER[s])),
}
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "bach_chorale.mid"
COMMANDS: dict[str, tuple[str, Callable[[Path, Path, Path], list[str]]]] = {
    # name: (system, arguments given the model, an output folder and a data folder)
    "render": ("render", lambda m, o, d: ["render", str(EXAMPLE), "-o", str(o / "out.wav"),
                                          "--model", str(m), "-q"]),
    "note": ("note", lambda m, o, d: ["note", "-i", "flute", "-p", "60", "-o", str(o / "out.wav"),
                                      "--model", str(m)]),
    "evaluate render": ("render", lambda m, o, d: ["evaluate", "render", "--model", str(m), "--data", str(d),
                                                   "--png", str(o / "out.png"), "-q"]),
    "evaluate note": ("note", lambda m, o, d: ["evaluate", "note", "--model", str(m), "--data", str(d)]),
    "train render --init-from": ("render", lambda m, o, d: ["train", "render", "--data", str(d), "--out",
                                                            str(o / "run"), "--init-from", str(m), "-q"]),
    "train note --init-from": ("note", lambda m, o, d: ["train", "note", "--data", str(d), "--out",
                                                        str(o / "run"), "--init-from", str(m), "-q"]),
}


def _assert_refused(result, crafted: Path, out_dir: Path, marker: Path) -> None:
    """Exit 1, exactly one line, an `error:` line naming the crafted file, nothing written, no payload run."""
    text = result.output.strip()
    assert result.exit_code == 1, text
    assert "Traceback" not in text
    lines = text.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), text
    assert str(crafted) in lines[0], text
    assert not marker.exists(), "the payload ran"
    assert sorted(p.name for p in out_dir.iterdir()) == [], "something was written"


def test_the_payload_is_live(tmp_path):
    """Control: unpickled, each crafted shape does run its code."""
    marker = tmp_path / "MARKER"
    pickle.loads(_bare_pickle(tmp_path / "x.pth", marker).read_bytes())
    assert marker.exists()
    marker.unlink()
    with zipfile.ZipFile(_torch_archive(tmp_path / "x.ckpt", marker)) as archive:
        pickled = next(name for name in archive.namelist() if name.endswith("data.pkl"))
        pickle.loads(archive.read(pickled))
    assert marker.exists()


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_crafted_model_is_refused_in_one_line_and_never_runs(command, shape, tmp_path):
    system, arguments = COMMANDS[command]
    marker = tmp_path / "MARKER"
    given, out_dir = tmp_path / "given", tmp_path / "out"
    given.mkdir()
    out_dir.mkdir()
    crafted = SHAPES[shape](given, marker, system)
    data = tmp_path / "data"  # an empty folder, never reached: the model is read first
    data.mkdir()
    result = runner.invoke(app, arguments(crafted, out_dir, data))
    _assert_refused(result, crafted, out_dir, marker)


def _render_run(run: Path) -> tuple[list[str], Path]:
    last = run / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    return ["train", "render", "--data", str(run.parent / "data"), "--out", str(run), "--resume", "-q"], last


def _note_run(run: Path) -> tuple[list[str], Path]:
    last = run / "stages" / "autoencoder" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    (run / "run.json").write_text("{}")
    return ["train", "note", "--data", str(run.parent / "data"), "--out", str(run), "--resume", "-q"], last


@pytest.mark.parametrize("make", [_torch_archive, _bare_pickle], ids=["archive", "bare pickle"])
@pytest.mark.parametrize("system", ["render", "note"])
def test_resume_refuses_a_crafted_last_checkpoint(system, make, tmp_path):
    marker = tmp_path / "MARKER"
    run = tmp_path / "run"
    (tmp_path / "data").mkdir()  # empty, never reached: the checkpoint is read first
    arguments, last = (_render_run if system == "render" else _note_run)(run)
    make(last, marker)
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    result = runner.invoke(app, arguments)
    empty = tmp_path / "nothing"
    empty.mkdir()
    _assert_refused(result, last, empty, marker)
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == before


def test_the_safe_reader_names_the_refusal(tmp_path):
    marker = tmp_path / "MARKER"
    with pytest.raises(CheckpointError, match="refused: the file holds Python objects"):
        read_training_checkpoint(_torch_archive(tmp_path / "a.ckpt", marker))
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        read_training_checkpoint(_bare_pickle(tmp_path / "b.ckpt", marker))
    torch.save({"weights": torch.zeros(2)}, tmp_path / "c.ckpt")  # plain data, but not ours
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        read_training_checkpoint(tmp_path / "c.ckpt")
    assert not marker.exists()


def test_no_source_file_unpickles():
    """The grep-able guarantee: no unrestricted torch.load, np.load or pickle.load in the package."""
    offending, loads = [], []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), 1):
            if re.search(r"weights_only\s*=\s*False|allow_pickle\s*=\s*True|pickle\.loads?\(|cloudpickle|dill\.load", line):
                offending.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
        loads += [(path, call) for call in re.findall(r"torch\.load\([^)]*\)", text)]
    assert offending == []
    assert loads and all("weights_only=True" in call for _, call in loads), loads
