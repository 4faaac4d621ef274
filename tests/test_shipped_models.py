"""The models shipped in the package: they load, are small, know what their cards say, and
make audio. (Quality figures live in their model cards and in benchmarks/.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from orchestrion.checkpoints import ASSETS_DIR
from orchestrion.systems.sing.infer import NoteModel, generate_notes

SIZE_LIMIT_MB = 14.0
"""render-cpu carries its note bank (4.8 MB of its 10.2 as float16), and no discriminator."""
REPO_ROOT = Path(__file__).resolve().parents[1]
HISTORY_PATH = "docs/models/render-cpu-history.md"


@pytest.mark.parametrize("name", ["render-cpu", "note-cpu"])
def test_shipped_model_is_small_and_documented(name):
    folder = ASSETS_DIR / name
    size_mb = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
    assert size_mb < SIZE_LIMIT_MB, size_mb
    card = (folder / "MODEL_CARD.md").read_text()
    assert "orchestrion train" in card and "orchestrion evaluate" in card


def test_shipped_render_model_carries_only_what_renders():
    """Its weights are the network that renders, each one read: no discriminator nor classifier."""
    from orchestrion.checkpoints import load_checkpoint
    from orchestrion.systems.organ.infer import RenderModel
    from orchestrion.systems.organ.model import OrganNetwork

    weights = load_checkpoint("render-cpu", "render").state_dict
    assert not [k for k in weights if k.startswith("discriminator.")]
    model = RenderModel.from_pretrained("render-cpu")
    assert not hasattr(model.network, "discriminator")
    assert weights.keys() == OrganNetwork.from_config(model.config).state_dict().keys()


def test_shipped_render_card_is_short_and_names_its_history():
    """The card keeps the current weights' figures; every earlier run lives in the repository's
    docs, out of the package."""
    card = (ASSETS_DIR / "render-cpu" / "MODEL_CARD.md").read_text()
    assert f"`{HISTORY_PATH}`" in card and len(card.splitlines()) < 120
    for column in ("MS-SSIM", "MR-STFT", "SWD", "AUC", "macro"):
        assert column in card
    history = (REPO_ROOT / HISTORY_PATH).read_text()
    assert "Previous shipped weights" in history and "orchestrion train render" in history
    assert not list((ASSETS_DIR / "render-cpu").glob("HISTORY*")), "history belongs in docs/"


def test_shipped_note_model_knows_eight_families_and_sounds_its_pitch():
    from orchestrion.systems.sing.evaluate import estimate_f0, pitch_error_cents

    model = NoteModel.from_pretrained()
    names = set(model.table.names)
    assert len(names) >= 8 and {"flute", "violin", "trumpet", "piano"} <= names
    waves = generate_notes(model, [("flute", 67, 100), ("violin", 62, 100)])
    assert waves.shape == (2, 64_000) and np.isfinite(waves).all()
    assert (np.sqrt((waves ** 2).mean(axis=1)) > 1e-3).all()  # audible
    # both are trained pitches of their instruments: the model says them within a semitone
    for wave, pitch in zip(waves, (67, 62)):
        assert abs(pitch_error_cents(estimate_f0(wave, model.sample_rate, pitch), pitch)) < 100


def test_shipped_note_model_sounds_a_pitch_no_instrument_trained_on():
    """D#4 (63) was held out for every instrument: the harmonic output still sounds it."""
    from orchestrion.systems.sing.evaluate import estimate_f0, pitch_error_cents
    from orchestrion.systems.sing.infer import NoteRangeWarning

    model = NoteModel.from_pretrained()
    assert 63 not in model.table.all_train_pitches()
    with pytest.warns(NoteRangeWarning, match="partials follow the requested pitch"):
        waves = generate_notes(model, [("flute", 63, 100), ("cello", 51, 100)])
    for wave, pitch in zip(waves, (63, 51)):
        assert abs(pitch_error_cents(estimate_f0(wave, model.sample_rate, pitch), pitch)) < 50


def test_shipped_render_model_renders_the_example_close_to_fluidsynth(example_midi, renderer_16k):
    """The shipped note-bank model against FluidSynth on the bundled chorale, by the issue's
    protocol (MS-SSIM, MR-STFT). The chorale (BWV 66.6) is one of the training pieces: this
    checks that the shipped model loads and renders a score as trained, not how it does on
    unheard music (the model card's held-out figures do). It scores 0.94 / 0.87 here (the
    weights of 2026-12-04a and 2026-12-04c); the weights shipped before them 0.93 / 0.89
    (2026-12-03g), 0.92 / 1.00 (2026-12-03f) and 0.78 / 1.20 (2026-12-03d, harmonic); another
    real synthesizer scores ~0.80 / 1.08 on such pieces."""
    import pretty_midi

    from orchestrion.metrics.audio import compare_audio
    from orchestrion.systems.organ.infer import RenderModel, render_score

    model = RenderModel.from_pretrained("render-cpu")
    assert model.config.output_prior == "bank" and model.network.note_bank.stored_keys() > 400
    result = render_score(example_midi, model)
    reference = renderer_16k.render_score(pretty_midi.PrettyMIDI(str(example_midi)))
    scores = compare_audio(reference, result.audio, 16000, result.sample_rate)
    assert scores.ms_ssim > 0.90 and scores.mr_stft < 0.95, scores


def test_shipped_render_config_keeps_training_apart_and_renders_from_its_model_part():
    """config.json's "config" holds what rendering reads; the losses, schedules and the
    discriminator's fields sit under "training", and the model part alone renders the same."""
    import dataclasses
    import json

    import torch

    from orchestrion.checkpoints import load_checkpoint
    from orchestrion.systems.organ.infer import RenderModel
    from orchestrion.systems.organ.presets import TRAINING_ONLY_FIELDS

    document = json.loads((ASSETS_DIR / "render-cpu" / "config.json").read_text())
    assert document["training"] and set(document["training"]) <= set(TRAINING_ONLY_FIELDS)
    assert not set(document["config"]) & set(TRAINING_ONLY_FIELDS)
    full = load_checkpoint("render-cpu", "render")
    model_part = dataclasses.replace(full, config=document["config"])
    generator = torch.Generator().manual_seed(0)
    roll = (torch.rand(1, 16, 128, 48, generator=generator) > 0.997).float() * 0.8
    with torch.no_grad():
        rendered = RenderModel.from_checkpoint(full)(roll)
        from_model_part = RenderModel.from_checkpoint(model_part)(roll)
    assert roll.sum() > 0 and torch.equal(rendered, from_model_part)


def test_shipped_note_config_keeps_training_apart_and_generates_from_its_model_part():
    """note-cpu's "sing" holds what generation reads; the optimiser, the stages and the
    augmentation sit under "sing_training", and the model part alone makes the same note."""
    import dataclasses

    import torch

    from orchestrion.checkpoints import load_checkpoint
    from orchestrion.systems.sing.presets import TRAINING_ONLY_FIELDS

    full = load_checkpoint("note-cpu", "note")
    assert full.config["sing_training"] and set(full.config["sing_training"]) == set(TRAINING_ONLY_FIELDS)
    assert not set(full.config["sing"]) & set(TRAINING_ONLY_FIELDS)
    model_part = dataclasses.replace(full, config={k: v for k, v in full.config.items() if k != "sing_training"})
    notes = [("flute", 72, 100)]
    with torch.no_grad():
        made = generate_notes(NoteModel.from_checkpoint(full), notes)
        from_model_part = generate_notes(NoteModel.from_checkpoint(model_part), notes)
    assert np.abs(made[0]).max() > 0 and np.array_equal(made[0], from_model_part[0])
