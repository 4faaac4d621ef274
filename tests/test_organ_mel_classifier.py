"""The mel-band instrument classifier: its front end against librosa, level invariance,
gradients, configuration errors, and continuing a model with it."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from orchestrion.checkpoints import Checkpoint
from orchestrion.errors import ConfigError
from orchestrion.systems.organ import OrganModel, get_preset
from orchestrion.systems.organ.mel_classifier import MEL_FMIN_HZ, MelClassifier
from orchestrion.systems.organ.discriminator import CLASSIFIER_WEIGHTS
from orchestrion.systems.organ.train import load_start

TINY = {"base_width": 4, "discriminator_width": 0.125}
MEL = {"classifier_network": "mel_cnn", "classifier_width": 0.25}


def _power(frames: int = 24, seed: int = 0) -> torch.Tensor:
    """(2, 1, 513, frames) power spanning ~+40 dB to far below -80 dB re its peak."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(2, 1, 513, frames, generator=generator) ** 6 * 1e4


def test_the_front_end_is_librosas_mel_db_re_the_peak():
    classifier = MelClassifier(16000, 1024, 16, n_mels=64, base_width=2, range_db=80.0)
    power = _power()
    power[..., :4] = 0.0  # silent frames: at the floor
    read = classifier.front(torch.log1p(power)).numpy()
    for item in range(2):
        mel = librosa.feature.melspectrogram(S=power[item, 0].double().numpy(), sr=16000, n_fft=1024,
                                             n_mels=64, fmin=MEL_FMIN_HZ)
        expected = librosa.power_to_db(mel, ref=np.max, top_db=80.0) / 20.0 + 2.0
        np.testing.assert_allclose(read[item, 0], expected, atol=2e-3)
    assert read.max() == pytest.approx(2.0, abs=1e-5) and read.min() == pytest.approx(-2.0, abs=1e-5)


def test_a_mel_classifier_is_deaf_to_the_level_and_its_gradients_reach_every_weight():
    torch.manual_seed(0)
    model = OrganModel.from_config(get_preset("cpu", **TINY, **MEL)).eval()
    discriminator = model.discriminator
    power = _power()
    quieter = power * 10 ** (-20 / 10)
    with torch.no_grad():
        logits = discriminator.classify(torch.log1p(power))
        torch.testing.assert_close(discriminator.classify(torch.log1p(quieter)), logits, rtol=0, atol=1e-4)
    assert logits.shape == (2, 16)
    model.train()
    spectrogram = torch.log1p(quieter).requires_grad_(True)
    discriminator.classify(spectrogram).sum().backward()
    weights = [p for name, p in model.named_parameters() if name.startswith(CLASSIFIER_WEIGHTS)]
    assert weights and all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)
    assert spectrogram.grad[quieter < 1e-2].abs().sum() > 0  # the bins below the log's knee too
    assert discriminator.classifier is None and discriminator.classifier_features is None


def test_the_mel_classifier_stores_no_filterbank_and_its_width_follows_the_config():
    model = OrganModel.from_config(get_preset("cpu", **TINY, **MEL, classifier_mels=64))
    names = [name for name in model.state_dict() if name.startswith("discriminator.mel_classifier.")]
    assert names and not any("filterbank" in name or "pseudo_inverse" in name for name in names)
    first = model.state_dict()["discriminator.mel_classifier.blocks.0.0.weight"]
    assert first.shape == (4, 1, 3, 3)  # 16 x 0.25 channels
    assert model.discriminator.mel_classifier.mel.n_mels == 64


@pytest.mark.parametrize(("overrides", "match"), [
    ({"classifier_mel_db_range": 0.0}, "classifier_mel_db_range"),
    ({"classifier_mels": 100}, "multiple of 8"),
    ({"classifier_context": 2}, "strided"),
    ({"classifier_input": "joint"}, "spectrogram"),
    ({"classifier_network": "resnet"}, "classifier_network"),
])
def test_mel_classifier_config_errors(overrides, match):
    with pytest.raises(ConfigError, match=match):
        get_preset("cpu", **{**MEL, **overrides})


def test_too_short_a_spectrogram_is_refused():
    classifier = MelClassifier(16000, 1024, 16, base_width=2)
    with pytest.raises(ConfigError, match="at least 8 frames"):
        classifier(torch.zeros(1, 1, 513, 4))


def test_a_strided_model_continued_with_a_mel_classifier_keeps_all_but_the_classifier():
    """--init-from a model with the strided classifier (and its frequency context) under classifier_network=mel_cnn: all else is kept, the mel classifier starts fresh."""
    torch.manual_seed(0)
    before = OrganModel.from_config(get_preset("cpu", **TINY, classifier_context=2))
    start = Checkpoint(None, "render", before.config.to_dict(), before.state_dict(), "")
    after = OrganModel.from_config(get_preset("cpu", **TINY, **MEL))  # the strided stack's options go
    fresh = {name: tensor.clone() for name, tensor in after.state_dict().items()}
    with pytest.warns(UserWarning, match="another shape"):  # a new network and width
        load_start(after, "start", start, after.config)
    state = after.state_dict()
    for name, tensor in before.state_dict().items():
        if not name.startswith(CLASSIFIER_WEIGHTS):
            torch.testing.assert_close(state[name], tensor, rtol=0, atol=0)
    for name, tensor in fresh.items():
        if name.startswith("discriminator.mel_classifier."):
            torch.testing.assert_close(state[name], tensor, rtol=0, atol=0)


def test_both_networks_average_their_logits_and_a_strided_model_continued_with_both_keeps_its_classifier():
    torch.manual_seed(0)
    before = OrganModel.from_config(get_preset("cpu", **TINY, classifier_context=2, classifier_width=0.25))
    start = Checkpoint(None, "render", before.config.to_dict(), before.state_dict(), "")
    after = OrganModel.from_config(get_preset("cpu", **TINY, **{**MEL, "classifier_network": "both"},
                                              classifier_context=2))
    with pytest.warns(UserWarning, match="the mel_cnn part starts fresh; the strided part keeps its weights"):
        load_start(after, "start", start, after.config)
    for name, tensor in before.state_dict().items():
        torch.testing.assert_close(after.state_dict()[name], tensor, rtol=0, atol=0)
    after.eval()
    before.eval()
    spectrogram = torch.log1p(_power())
    with torch.no_grad():
        mel_logits = after.discriminator.mel_classifier(spectrogram)
        strided_logits = before.discriminator.classify(spectrogram)
        torch.testing.assert_close(after.discriminator.classify(spectrogram), (mel_logits + strided_logits) / 2)
