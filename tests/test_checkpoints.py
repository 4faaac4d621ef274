"""Model folders: what a card's header says about how the weights were made."""

from __future__ import annotations

from pathlib import Path

from orchestrion.checkpoints import Checkpoint

CARD = """# render model (orGAN)

- parameters: 10
- trained (2026-12-01e): 104 minutes on two cores
- trained slots: violin, viola
- training command (its other settings are the start's): `orchestrion train render --seed 17`
- started from: `render-cpu`

## Evaluation
- trained: a line inside a section is not the header

# Previous shipped weights, kept for their history

- trained: 480 steps, 20 minutes
- training command: `orchestrion train render --seed 8`
"""


def test_history_reads_only_the_cards_header():
    checkpoint = Checkpoint(Path("m"), "render", {}, {}, CARD)
    assert checkpoint.history() == [
        "trained (2026-12-01e): 104 minutes on two cores",
        "training command (its other settings are the start's): `orchestrion train render --seed 17`",
        "started from: `render-cpu`",
    ]


def test_history_of_a_card_without_sections_is_all_its_lines():
    card = "# note model\n\n- trained: 5 steps\n- training command: `x`\n"
    assert Checkpoint(Path("m"), "note", {}, {}, card).history() == [
        "trained: 5 steps",
        "training command: `x`",
    ]


def test_training_fields_are_kept_apart_in_config_json_and_merged_on_loading(tmp_path):
    import json

    import torch

    from orchestrion.checkpoints import load_checkpoint, save_checkpoint

    config = {"n_fft": 1024, "learning_rate": 3e-4, "betas": [0.5, 0.999]}
    folder = save_checkpoint(tmp_path / "m", "render", config, {"w": torch.ones(2)}, "# card\n",
                             training_fields=("learning_rate", "betas", "absent"))
    document = json.loads((folder / "config.json").read_text())
    assert document["config"] == {"n_fft": 1024}
    assert document["training"] == {"learning_rate": 3e-4, "betas": [0.5, 0.999]}
    assert load_checkpoint(folder, "render").config == config
    plain = save_checkpoint(tmp_path / "p", "render", config, {"w": torch.ones(2)}, "# card\n")
    assert "training" not in json.loads((plain / "config.json").read_text())
