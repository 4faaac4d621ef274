"""The instrument classifier's pitch hint: the score's notes with the instruments erased,
read as a second input channel; continuing a model with it. (Its training draws:
``test_organ_classifier_data.py``.)"""

from __future__ import annotations

import pytest
import torch
from classifier_inputs import FRAMES, noise_spectrogram, score_roll

from orchestrion.checkpoints import Checkpoint
from orchestrion.errors import ConfigError
from orchestrion.systems.organ import OrganModel, get_preset
from orchestrion.systems.organ.discriminator import CLASSIFIER_WEIGHTS
from orchestrion.systems.organ.train import load_start

TINY = {"base_width": 4, "discriminator_width": 0.125, "classifier_network": "both", "classifier_width": 0.25}


def _hinted(**settings) -> OrganModel:
    return OrganModel.from_config(get_preset("cpu", **TINY, classifier_pitch_hint=True, **settings)).eval()


def test_the_hint_erases_the_instruments_but_keeps_the_pitches():
    torch.manual_seed(0)
    model = _hinted()
    spectrogram = noise_spectrogram()

    def logits(roll: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model.discriminate(spectrogram, model.condition(roll)).instrument_logits

    violin_and_cello = logits(score_roll((3, 5), (67, 48)))
    torch.testing.assert_close(logits(score_roll((9, 0), (67, 48))), violin_and_cello, rtol=0, atol=1e-6)
    assert (logits(score_roll((3, 5), (72, 43))) - violin_and_cello).abs().max() > 1e-4  # other notes: another answer
    hint = model.discriminator.pitch_hint(model.condition(score_roll((3, 5), (67, 48))))
    assert hint.shape == (1, 1, 513, FRAMES) and hint[..., :4].abs().max() == 0 and hint[..., 4:20].amax() > 0


def test_a_model_continued_with_the_hint_answers_as_before_and_learns_to_read_it():
    torch.manual_seed(0)
    before = OrganModel.from_config(get_preset("cpu", **TINY, classifier_context=1))
    start = Checkpoint(None, "render", before.config.to_dict(), before.state_dict(), "")
    after = OrganModel.from_config(get_preset("cpu", **TINY, classifier_context=1, classifier_pitch_hint=True))
    with pytest.warns(UserWarning, match="pitch hint"):
        load_start(after, "start", start, after.config)
    before.eval()
    after.eval()
    spectrogram, roll = noise_spectrogram(), score_roll((3, 5), (67, 48))
    with torch.no_grad():
        old = before.discriminate(spectrogram, before.condition(roll)).instrument_logits
        new = after.discriminate(spectrogram, after.condition(roll)).instrument_logits
    torch.testing.assert_close(new, old, rtol=0, atol=1e-5)
    after.train()
    after.discriminate(spectrogram, after.condition(roll)).instrument_logits.sum().backward()
    firsts = ["discriminator.classifier_features.0.weight", "discriminator.mel_classifier.blocks.0.0.weight"]
    weights = dict(after.named_parameters())
    for name in firsts:
        assert weights[name].shape[1] == 2
        assert weights[name][:, 1].abs().max() == 0 and weights[name].grad[:, 1].abs().max() > 0


def test_a_hinted_classifier_continued_without_the_hint_starts_fresh():
    torch.manual_seed(0)
    before = _hinted()
    start = Checkpoint(None, "render", before.config.to_dict(), before.state_dict(), "")
    after = OrganModel.from_config(get_preset("cpu", **TINY))
    fresh = {name: t.clone() for name, t in after.state_dict().items() if name.startswith(CLASSIFIER_WEIGHTS)}
    with pytest.warns(UserWarning, match="starts fresh"):
        load_start(after, "start", start, after.config)
    for name, tensor in fresh.items():
        torch.testing.assert_close(after.state_dict()[name], tensor, rtol=0, atol=0)


def test_a_hinted_classifier_without_the_roll_and_bad_settings_are_clear_errors():
    model = _hinted()
    with pytest.raises(ConfigError, match="pitch hint"):
        model.discriminator.classify(noise_spectrogram())
    with pytest.raises(ConfigError, match="pitch hint"):
        model.discriminator.mel_classifier(noise_spectrogram())
    with pytest.raises(ConfigError, match="classifier_pitch_hint"):
        get_preset("cpu", classifier_input="joint", classifier_pitch_hint=True)
    with pytest.raises(ConfigError, match="classifier_pitch_hint"):
        get_preset("cpu", classifier_pitch_hint="yes")
