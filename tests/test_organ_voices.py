"""The classifier of voices: each sounding slot's notes named alone, the slot erased; a chunk's
answer is the maximum over its voices; continuing a mel classifier with voices; the voice loss.
(The muted-part draws it trains on: ``test_organ_classifier_data.py``.)"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from classifier_inputs import FRAMES, noise_spectrogram, score_roll

from orchestrion.checkpoints import Checkpoint
from orchestrion.errors import ConfigError
from orchestrion.systems.organ import OrganModel, get_preset
from orchestrion.systems.organ.mel_classifier import MelClassifier
from orchestrion.systems.organ.discriminator import SILENT_CHUNK_LOGIT, VoiceJudgement
from orchestrion.systems.organ.losses import OrganLoss
from orchestrion.systems.organ.train import load_start

TINY = {"base_width": 4, "discriminator_width": 0.125, "classifier_network": "mel_cnn", "classifier_width": 0.25,
        "classifier_pitch_hint": True}


def _voices(**settings) -> OrganModel:
    torch.manual_seed(0)
    model = OrganModel.from_config(get_preset("cpu", **TINY, classifier_voices=True, **settings))
    with torch.no_grad():  # the voice channel starts at zero: give it weights, so it matters
        model.discriminator.mel_classifier.blocks[0][0].weight[:, -1].normal_(0, 2.0)
    return model.eval()


def test_each_voice_is_named_without_its_slot():
    model = _voices()
    spectrogram = noise_spectrogram()

    def judge(roll: torch.Tensor) -> VoiceJudgement:
        with torch.no_grad():
            return model.discriminator.classify_voices(spectrogram, model.condition(roll))

    violin_and_cello = judge(score_roll((3, 5), (67, 48)))
    assert violin_and_cello.owner.tolist() == [0, 0] and violin_and_cello.slot.tolist() == [3, 5]
    moved = judge(score_roll((9, 0), (67, 48)))  # the same notes on other slots: the same answers, per voice
    assert moved.slot.tolist() == [0, 9]
    torch.testing.assert_close(moved.logits.flip(0), violin_and_cello.logits, rtol=0, atol=1e-5)
    # each voice is read by its own notes: the two voices differ, and other notes give another answer
    assert (violin_and_cello.logits[0] - violin_and_cello.logits[1]).abs().max() > 1e-4
    assert (judge(score_roll((3, 5), (72, 43))).logits - violin_and_cello.logits).abs().max() > 1e-4


def test_a_chunk_names_what_any_of_its_voices_names_and_without_notes_names_none():
    model = _voices()
    spectrogram = torch.cat([noise_spectrogram(0), noise_spectrogram(1), noise_spectrogram(2)])
    roll = torch.cat([score_roll((3, 5), (67, 48)), score_roll((7,), (55,)), score_roll((), ())])
    with torch.no_grad():
        judgement = model.discriminate(spectrogram, model.condition(roll))
    voices = judgement.voices
    assert voices.owner.tolist() == [0, 0, 1] and voices.slot.tolist() == [3, 5, 7]
    expected = torch.stack([voices.logits[:2].amax(dim=0), voices.logits[2]])
    torch.testing.assert_close(judgement.instrument_logits[:2], expected, rtol=0, atol=0)
    assert (judgement.instrument_logits[2] == SILENT_CHUNK_LOGIT).all()  # a chunk without notes
    torch.testing.assert_close(model.discriminator.classify(spectrogram, condition=model.condition(roll)),
                               judgement.instrument_logits, rtol=0, atol=0)
    model.discriminator.voice_bonus = 3.0  # each voice's best guess raised: the decision, not the logits
    with torch.no_grad():
        decided = model.discriminate(spectrogram, model.condition(roll))
    torch.testing.assert_close(decided.voices.logits, voices.logits, rtol=0, atol=0)
    top = voices.logits[2].argmax()
    assert decided.instrument_logits[1, top] == voices.logits[2, top] + 3.0
    others = torch.arange(16) != top
    torch.testing.assert_close(decided.instrument_logits[1, others], voices.logits[2, others], rtol=0, atol=0)
    model.discriminator.voice_penalty = 2.0  # and its other guesses lowered
    with torch.no_grad():
        single = model.discriminate(spectrogram, model.condition(roll))
    assert single.instrument_logits[1, top] == voices.logits[2, top] + 3.0
    torch.testing.assert_close(single.instrument_logits[1, others], voices.logits[2, others] - 2.0, rtol=0, atol=0)
    torch.testing.assert_close(single.voices.logits, voices.logits, rtol=0, atol=0)


def test_a_voice_is_pooled_over_the_frames_where_it_sounds():
    model = _voices()
    spectrogram = noise_spectrogram()
    early, late = score_roll((3,), (60,), (slice(0, 8),)), score_roll((3,), (60,), (slice(16, 24),))
    with torch.no_grad():
        logits = [model.discriminator.classify_voices(spectrogram, model.condition(r)).logits for r in (early, late)]
    assert (logits[0] - logits[1]).abs().max() > 1e-3


def test_a_mel_classifier_continued_with_voices_answers_as_before_and_learns_to_read_them():
    torch.manual_seed(0)
    before = OrganModel.from_config(get_preset("cpu", **{**TINY, "classifier_network": "both"}))
    start = Checkpoint(None, "render", before.config.to_dict(), before.state_dict(), "")
    after = OrganModel.from_config(get_preset("cpu", **TINY, classifier_voices=True))
    with pytest.warns(UserWarning) as caught:
        load_start(after, "start", start, after.config)
    said = " ".join(str(w.message) for w in caught)
    assert "becomes 'mel_cnn'" in said and "keeps its weights" in said and "names each voice" in said
    before.eval()
    after.eval()
    spectrogram = noise_spectrogram()
    roll = score_roll((3,), (60,), (slice(0, FRAMES),))  # one voice over every frame: pooled as the chunk was
    condition = before.condition(roll)
    with torch.no_grad():
        old = before.discriminator.mel_classifier(spectrogram, before.discriminator.pitch_hint(condition))
        new = after.discriminate(spectrogram, after.condition(roll)).instrument_logits
    torch.testing.assert_close(new, old, rtol=0, atol=1e-5)
    after.train()
    judgement = after.discriminate(spectrogram, after.condition(roll))
    loss = OrganLoss(after.config).instrument_loss(judgement.instrument_logits, torch.zeros(1, 16), judgement.voices)
    loss.backward()
    weight = dict(after.named_parameters())["discriminator.mel_classifier.blocks.0.0.weight"]
    assert weight[:, -1].abs().max() == 0 and weight.grad[:, -1].abs().max() > 0


def test_the_voice_loss_names_each_voice_by_its_own_slot_and_a_muted_one_by_none():
    loss = OrganLoss(get_preset("cpu", **TINY, classifier_voices=True))
    logits = torch.randn(3, 16, requires_grad=True)
    voices = VoiceJudgement(logits, owner=torch.tensor([0, 0, 1]), slot=torch.tensor([3, 5, 7]))
    labels = torch.zeros(2, 16)
    labels[0, 3] = labels[1, 7] = 1.0  # slot 5 is in item 0's score but muted in its audio
    value = loss.instrument_loss(torch.zeros(2, 16), labels, voices)
    targets = torch.zeros(3, 16)
    targets[0, 3] = targets[2, 7] = 1.0
    torch.testing.assert_close(value, F.binary_cross_entropy_with_logits(logits, targets))
    value.backward()
    assert logits.grad[1].max() > 0 and logits.grad[0, 3] < 0  # the muted voice is pushed to name no one
    empty = VoiceJudgement(torch.zeros(0, 16, requires_grad=True), torch.zeros(0, dtype=torch.long),
                           torch.zeros(0, dtype=torch.long))
    assert float(loss.instrument_loss(torch.zeros(2, 16), labels, empty).detach()) == 0.0


def test_voices_need_the_mel_classifier_with_the_hint_and_are_asked_their_own_way():
    for settings in ({"classifier_network": "both"}, {"classifier_pitch_hint": False}):
        with pytest.raises(ConfigError, match="classifier_voices"):
            get_preset("cpu", **{**TINY, **settings}, classifier_voices=True)
    with pytest.raises(ConfigError, match="classifier_voices"):
        get_preset("cpu", **TINY, classifier_voices="yes")
    with pytest.raises(ConfigError, match="classifier_voice_bonus"):
        get_preset("cpu", **TINY, classifier_voice_bonus=3.0)
    with pytest.raises(ConfigError, match="classifier_voice_bonus"):
        get_preset("cpu", **TINY, classifier_voices=True, classifier_voice_bonus=-1.0)
    with pytest.raises(ConfigError, match="classifier_voice_penalty"):
        get_preset("cpu", **TINY, classifier_voice_penalty=1.0)
    with pytest.raises(ConfigError, match="classifier_voice_penalty"):
        get_preset("cpu", **TINY, classifier_voices=True, classifier_voice_penalty=-1.0)
    with pytest.raises(ConfigError, match="needs pitch_hint"):
        MelClassifier(16_000, 1024, 16, base_width=4, voices=True)
    model = _voices()
    with pytest.raises(ConfigError, match="voice_logits"):
        model.discriminator.mel_classifier(noise_spectrogram(), torch.zeros(1, 1, 513, FRAMES))
    with pytest.raises(ConfigError, match="encoded roll"):
        model.discriminator.classify(noise_spectrogram())
