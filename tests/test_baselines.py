"""Baselines beside every figure: the note bank alone, the render table, the note rows."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from orchestrion.errors import ConfigError
from orchestrion.metrics.judge import load_judge
from orchestrion.systems.organ.infer import RenderModel
from orchestrion.systems.organ.presets import get_preset


def tiny_bank_model() -> RenderModel:
    """A tiny random bank model whose bank holds a flute C5 and a cello C3 (sines)."""
    from test_organ_note_bank import sine_piece, tiny_config

    from orchestrion.systems.organ.model import OrganNetwork
    from orchestrion.systems.organ.note_bank import estimate_note_bank
    from orchestrion.systems.organ.train import start_note_bank

    torch.manual_seed(0)
    config = tiny_config()
    estimate = estimate_note_bank([sine_piece(72, 0.7, slot=4), sine_piece(48, 0.9, slot=2)], config)
    network = OrganNetwork.from_config(config.replace(bank_keys=len(estimate.keys)))
    start_note_bank(network, estimate)
    return RenderModel(network)


@pytest.fixture(scope="module")
def judge():
    return load_judge()


def roll_with_notes(config) -> tuple[torch.Tensor, torch.Tensor]:
    frames = 40
    roll = torch.zeros(1, config.n_slots, 128, frames)
    roll[0, 4, 72, 5:30] = 0.7   # flute
    roll[0, 2, 48, 10:38] = 0.9  # cello
    onsets = torch.zeros_like(roll)
    onsets[0, 4, 72, 5] = onsets[0, 2, 48, 10] = 1.0
    return roll, onsets


def test_the_bank_alone_does_not_depend_on_the_generator():
    model = tiny_bank_model()
    roll, onsets = roll_with_notes(model.config)
    with torch.no_grad():
        full = model(roll, onsets)
        model.bank_only = True
        bank = model(roll, onsets)
        for parameter in model.network.generator.parameters():
            parameter.add_(torch.randn_like(parameter))
        bank_again = model(roll, onsets)
        model.bank_only = False
        full_again = model(roll, onsets)
    assert bank.shape == full.shape
    torch.testing.assert_close(bank, bank_again)
    assert not torch.allclose(full, full_again)
    assert bank[0, 0, :, :5].abs().max() < 1e-6   # silence before the first note
    assert bank[0, 0, :, 12:28].amax() > 0.1         # the notes sound


def test_a_model_without_a_bank_has_no_bank_baseline():
    model = RenderModel.from_config(get_preset("cpu", base_width=4, discriminator_width=0.125))
    roll, onsets = roll_with_notes(model.config)
    model.bank_only = True
    with pytest.raises(ConfigError, match="no note bank"):
        model(roll, onsets)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    """Two chorales in URMP format at 16 kHz; the second moved to the test split."""
    from orchestrion.data.build_urmp import build_urmp

    out = tmp_path_factory.mktemp("urmp")
    build_urmp(out, scores="music21:bach", limit=2, sample_rate=16000, progress=False)
    splits_path = out / "splits.json"
    pieces = sorted(p for ids in json.loads(splits_path.read_text()).values() for p in ids)
    splits_path.write_text(json.dumps({"train": pieces[:1], "valid": [], "test": pieces[1:]}))
    return out


def test_evaluate_render_scores_the_model_and_every_baseline_on_the_same_chunks(tiny_dataset, judge):
    from orchestrion.systems.organ import baselines
    from orchestrion.systems.organ.evaluate import evaluate_render

    model = tiny_bank_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = evaluate_render(model, tiny_dataset, split="test", max_chunks=2, n_iter=2, judge=judge)
    table = report.baselines
    names = [baselines.MODEL_ROW, baselines.BANK_ROW, baselines.OTHER_SOUNDFONT_ROW, baselines.SILENCE_ROW,
             baselines.REFERENCE_ROW]
    assert list(table.rows) == names
    n_chunks = len(table.labels[0])
    assert n_chunks >= 5 and table.n_pieces == 1
    for row in table.rows.values():
        assert [len(p) for p in row.probabilities] == [n_chunks]
    reference = table.rows[baselines.REFERENCE_ROW]
    assert reference.mean("ms_ssim") == pytest.approx(1.0) and reference.mean("lsd") == pytest.approx(0.0, abs=1e-6)
    silence, model_row = table.rows[baselines.SILENCE_ROW], table.rows[baselines.MODEL_ROW]
    assert silence.mean("ms_ssim") < table.rows[baselines.OTHER_SOUNDFONT_ROW].mean("ms_ssim")
    assert model_row.audio["ms_ssim"] == [report.pieces[0].comparison.ms_ssim]
    assert table.scores(baselines.SILENCE_ROW).macro_accuracy == 0.0  # every chunk holds notes
    text = report.format()
    assert all(name in text for name in names) and "judge ceiling" in text
    assert text.index(baselines.REFERENCE_ROW) < text.index("Table 6.3")  # the headline comes first


def test_the_sawtooth_is_at_the_pitch_with_the_references_envelope_and_level():
    from orchestrion.systems.sing.baselines import envelope, sawtooth_note

    rate = 16000
    t = np.arange(2 * rate) / rate
    reference = (np.minimum(t, 0.5) * np.sin(2 * np.pi * 300 * t)).astype(np.float32)  # a ramp
    saw = sawtooth_note(69, reference, rate)
    assert saw.shape == reference.shape
    assert np.sqrt(np.mean(saw ** 2)) == pytest.approx(np.sqrt(np.mean(reference ** 2)), rel=1e-3)
    spectrum = np.abs(np.fft.rfft(saw[rate:]))
    assert np.fft.rfftfreq(rate, 1 / rate)[spectrum.argmax()] == pytest.approx(440, abs=2)
    level = envelope(saw, len(saw))
    assert level[rate // 8] < level[rate + rate // 2] / 2  # the ramp's course is kept


def test_note_baselines_list_every_row_and_say_n_a_for_instruments_the_judge_does_not_know(tmp_path, judge):
    from orchestrion.data.build_nsynth import NSynthBuildConfig, build_nsynth
    from orchestrion.data.nsynth import NSynthDataset
    from orchestrion.nn.spectral_losses import LogSpectralLoss
    from orchestrion.systems.sing import baselines

    build_nsynth(tmp_path, NSynthBuildConfig(instruments=("flute", "6"), pitches=(72, 73), velocities=(100,),
                                             heldout_pitches=()), workers=1, progress=False)
    dataset = NSynthDataset(tmp_path, split="train")
    records = list(dataset.records)
    recorded = torch.stack([dataset[i]["audio"] for i in range(len(records))])
    table = baselines.new_note_baselines(16000, judge, by_construction=True)
    loss = LogSpectralLoss(reduction="none")
    table.add_batch(records, recorded, recorded * 0.5, loss)
    rows = table.to_dict()
    assert list(rows) == [baselines.MODEL_ROW, baselines.SILENCE_ROW, baselines.SAWTOOTH_ROW,
                          baselines.NEIGHBOUR_ROW, baselines.REFERENCE_ROW]
    assert rows[baselines.REFERENCE_ROW]["spectral"] == 0.0
    assert rows[baselines.SILENCE_ROW]["judge_macro_accuracy"] == 0.0
    assert rows[baselines.NEIGHBOUR_ROW]["spectral"] < rows[baselines.SAWTOOTH_ROW]["spectral"]
    assert len(table.labels) == sum(r.instrument_number == 73 for r in records)  # harpsichord: n/a
    text = table.format()
    assert "n/a for keyboard_acoustic_006" in text and baselines.BY_CONSTRUCTION in text
