"""`train render --devices 2 --strategy ddp` on CPU (gloo): two processes, one set of weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrion.data.build_urmp import build_urmp

# Runs the command line in a script file, as Lightning's DDP launcher needs (it starts the
# other process by running the same command again), with one callback added to the trainer:
# at the end each rank writes a hash of its parameters and of the first batch it drew.
DRIVER = textwrap.dedent("""
    import hashlib, json, sys
    from pathlib import Path
    import torch
    from lightning.pytorch.callbacks import Callback
    from orchestrion.systems.organ import train as organ_train

    def digest(tensors):
        hashed = hashlib.sha256()
        for name, value in tensors:
            hashed.update(name.encode())
            hashed.update(value.detach().cpu().contiguous().numpy().tobytes())
        return hashed.hexdigest()

    class RankRecord(Callback):
        first_batch = ""

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if not self.first_batch:
                self.first_batch = digest(sorted((k, v) for k, v in batch.items() if torch.is_tensor(v)))

        def on_train_end(self, trainer, pl_module):
            record = {"weights": digest(sorted(pl_module.model.named_parameters())),
                      "first_batch": self.first_batch, "world_size": trainer.world_size}
            out = Path(sys.argv[sys.argv.index("--out") + 1])
            (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))

    build = organ_train.build_trainer
    organ_train.build_trainer = lambda **kw: build(**{**kw, "callbacks": [*kw.get("callbacks", ()), RankRecord()]})
    from orchestrion.cli import app
    app(sys.argv[1:], prog_name="orchestrion")
""")


@pytest.fixture(scope="module")
def two_pieces(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("urmp") / "two"
    build_urmp(out, limit=2, sample_rate=16000, progress=False)
    return out


def test_two_processes_train_one_set_of_weights(two_pieces, tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, str(driver), "train", "render", "--data", str(two_pieces), "--out", str(run), "-q",
         "--max-steps", "2", "--devices", "2", "--strategy", "ddp", "--set", "base_width=4",
         "--set", "discriminator_width=0.125", "--set", "chunk_s=1.0", "--set", "batch_size=4"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ranks = [json.loads((run / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert all(record["world_size"] == 2 for record in ranks)
    assert ranks[0]["first_batch"] != ranks[1]["first_batch"]  # each process trains on its own share
    assert ranks[0]["weights"] == ranks[1]["weights"]  # and the gradients are shared: one model
    assert (run / "model" / "model.safetensors").is_file()
    assert proc.stdout.count("model: ") == 1, proc.stdout  # one process reports


def test_train_note_runs_on_two_processes(tmp_path):
    from orchestrion.data.build_nsynth import NSynthBuildConfig, build_nsynth

    data = tmp_path / "nsynth"
    build_nsynth(data, NSynthBuildConfig(instruments=("flute", "violin"), pitches=(60, 64), velocities=(100,),
                                         heldout_pitches=(62,)), workers=1, progress=False)
    tiny = {"channels": 16, "latent_dim": 8, "lstm_layers": 1, "lstm_hidden": 16, "batch_size": 2,
            "lstm_truncation_steps": 64, "autoencoder_epochs": 1, "sequence_epochs": 1, "finetune_epochs": 1,
            "autoencoder_warmup_batches": 0, "harmonic_partials": 0, "conv_synthesis": "true"}
    sets = [arg for key, value in tiny.items() for arg in ("--set", f"{key}={value}")]
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrion.cli", "train", "note", "--data", str(data), "--out", str(run), "-q",
         "--max-steps-per-stage", "2", "--evaluate-notes", "0", "--devices", "2", "--strategy", "ddp", *sets],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("exported") == 1, proc.stdout  # one process reports and exports
    assert (run / "model" / "model.safetensors").is_file()
