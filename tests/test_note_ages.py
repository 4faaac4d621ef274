"""Note-age features of the orGAN generator: ages from onsets, their encoding, the zero-started
input branch a model gains when continued with them, and true ages across render windows."""

from __future__ import annotations

import math

import numpy as np
import pretty_midi
import pytest
import torch

from orchestrion.checkpoints import Checkpoint, load_state_into
from orchestrion.errors import ConfigError
from orchestrion.systems.organ import get_preset
from orchestrion.systems.organ.encoding import AGE_UNKNOWN, ChannelSubset, note_ages
from orchestrion.systems.organ.infer import RenderModel, render_score
from orchestrion.systems.organ.gan import OrganModel
from orchestrion.systems.organ.train import _fresh_weights

AGES_S = [0.05, 0.2]


def tiny_config(**overrides):
    return get_preset("cpu", base_width=4, discriminator_width=0.125, **overrides)


def lane(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def test_note_ages_count_the_frames_since_each_onset():
    roll = lane([0, 1, 1, 1, 0, 1, 1, 1, 1, 0])
    onsets = lane([0, 1, 0, 0, 0, 1, 0, 1, 0, 0])  # a note, a rest, a note struck again at 7
    u = AGE_UNKNOWN
    assert note_ages(roll, onsets).tolist() == [u, 0, 1, 2, u, 0, 1, 0, 1, u]
    # a note sounding from the first frame with no onset there began earlier: its age is unknown
    carried = note_ages(lane([1, 1, 1, 0, 1]), lane([0, 0, 0, 0, 1]))
    assert carried.tolist() == [u, u, u, u, 0]
    # lanes are independent along every leading axis
    both = note_ages(torch.stack([roll, roll.flip(0)]), torch.stack([onsets, onsets.flip(0)]))
    assert both[0].tolist() == note_ages(roll, onsets).tolist()
    with pytest.raises(ConfigError, match="differ"):
        note_ages(roll, onsets[:-1])


def test_note_age_settings_are_checked_and_give_the_lookback():
    config = tiny_config(note_age_s=[0.05, 0.8])
    assert config.note_age_s == (0.05, 0.8)
    assert config.note_age_frames == pytest.approx((0.05 * 62.5, 0.8 * 62.5))
    assert config.note_age_lookback == 300  # 6 time constants of 0.8 s at 62.5 frames a second
    assert tiny_config().note_age_lookback == 0
    for bad in ([0.1, -0.2], [0.0], "abc", 0.1):
        with pytest.raises(ConfigError, match="note_age_s"):
            tiny_config(note_age_s=bad)


def test_the_age_image_weights_each_note_by_its_age_and_only_sounding_slots_are_built():
    torch.manual_seed(0)
    config = tiny_config(note_age_s=AGES_S)
    model = OrganModel.from_config(config)
    K = len(AGES_S)
    roll = torch.zeros(2, 16, 128, 20)
    onsets = torch.zeros_like(roll)
    roll[0, 3, 60, 5:15] = 0.8
    onsets[0, 3, 60, 5] = 1
    roll[1, 9, 50, 0:20] = 0.4  # begun before these frames: no onset, so no age features
    side = model.age_condition(roll, onsets)
    assert side.channels.tolist() == [3 * K, 3 * K + 1, 9 * K, 9 * K + 1]
    assert side.image.shape == (2, 4, config.n_bins, 20)
    image = model.condition(roll)[0, 3]  # the roll's own channel for slot 3
    for k, tau in enumerate(config.note_age_frames):
        for t in (5, 9, 14):
            expected = image[:, t] * math.exp(-(t - 5) / tau)
            torch.testing.assert_close(side.image[0, k, :, t], expected)
    assert float(side.image[0, :, :, :5].abs().max()) == 0.0 and float(side.image[1].abs().max()) == 0.0
    # the built channels give what the full input (every other channel zero) gives
    with torch.no_grad():
        model.generator.age_input.weight.normal_()
    model.eval()
    model.set_inference_dropout(False)
    roll[1, 9, 50, 12] = 0
    onsets[1, 9, 50, 13] = 1  # struck again: now slot 9 has ages too
    side = model.age_condition(roll, onsets)
    full = torch.zeros(2, 16 * K, config.n_bins, 20)
    full[:, side.channels] = side.image
    everything = ChannelSubset(full, torch.arange(16 * K))
    condition = model.condition(roll)
    torch.testing.assert_close(model.generate(condition, roll, side), model.generate(condition, roll, everything))
    assert not torch.allclose(model.generate(condition, roll, side),
                              model.generate(condition, roll, ChannelSubset(full[:, :0], side.channels[:0])))


def test_a_model_continued_with_note_ages_renders_as_before_until_it_learns_them():
    torch.manual_seed(0)
    before = OrganModel.from_config(tiny_config())
    start = Checkpoint(None, "render", before.config.to_dict(), before.state_dict(), "")
    config = tiny_config(note_age_s=AGES_S)
    skip = _fresh_weights("start", start.config, config)
    assert skip == ("generator.age_input.",)
    after = OrganModel.from_config(config)
    load_state_into(after, start, skip=skip)
    for model in (before, after):
        model.eval()
        model.set_inference_dropout(False)
    roll = torch.zeros(2, 16, 128, 32)
    roll[:, 0, 60, 4:20] = 0.7
    roll[1, 5, 48, 10:30] = 0.5
    torch.testing.assert_close(after(roll), before(roll), rtol=0, atol=0)
    # the branch starts at zero, yet its weights receive a gradient: it can learn
    after.train()
    after(roll).mean().backward()
    grad = after.generator.age_input.weight.grad
    assert grad is not None and float(grad.abs().max()) > 0
    with pytest.raises(ConfigError, match="note-age input is missing"):
        after.generator(after.condition(roll))


def test_render_windows_see_the_true_age_of_notes_begun_before_them(monkeypatch):
    torch.manual_seed(0)
    model = RenderModel.from_config(tiny_config(note_age_s=AGES_S))
    seen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    magnitude = RenderModel.magnitude

    def recording(self, roll, onsets=None, ages=None):
        seen.append((roll.clone(), onsets.clone(), ages.clone()))
        return magnitude(self, roll, onsets, ages)

    monkeypatch.setattr(RenderModel, "magnitude", recording)
    score = pretty_midi.PrettyMIDI()
    violin = pretty_midi.Instrument(program=40)
    # notes of 1 s, shorter than the 1.2 s the ages look back, each spanning two windows
    violin.notes = [pretty_midi.Note(90, 67 + 2 * k, float(k), k + 1.0) for k in range(3)]
    score.instruments.append(violin)
    result = render_score(score, model, window_s=0.5, overlap_s=0.1, n_iter=2)
    assert np.isfinite(result.audio).all()
    windows = [(r[b], o[b], a[b]) for r, o, a in seen for b in range(r.shape[0])]
    assert len(windows) >= 5
    carried = 0
    for roll, onsets, ages in windows:
        sounding = roll > 0
        assert bool((ages[sounding] < AGE_UNKNOWN).all())  # every note's onset was found
        held = sounding[..., 1:] & sounding[..., :-1] & (onsets[..., 1:] == 0)
        assert bool((ages[..., 1:][held] == ages[..., :-1][held] + 1).all())
        carried += int(bool((ages[..., 0][sounding[..., 0]] > 0).any()))
    assert carried >= 3  # windows that start inside the held note know how long it has sounded


@pytest.mark.parametrize("factor", [1.0, 20.0])
def test_the_note_age_input_gets_its_own_rate_only_when_asked(factor):
    from orchestrion.systems.organ.module import OrganModule

    config = tiny_config(note_age_s=AGES_S, age_lr_factor=factor, learning_rate=1e-4)
    module = OrganModule(config)
    g_opt, _ = module.configure_optimizers()
    age_ids = {id(p) for p in module.model.age_parameters()}
    assert age_ids
    groups = [{id(p) for p in group["params"]} for group in g_opt.param_groups]
    covered = set().union(*groups)
    assert covered == {id(p) for p in (*module.model.generator_parameters(),
                                       *module.model.lobe_parameters())}  # each weight once
    own = [group for group in g_opt.param_groups if {id(p) for p in group["params"]} == age_ids]
    if factor == 1.0:  # one group for the whole generator, as runs made before the field
        assert not own and age_ids <= groups[0]
    else:
        assert len(own) == 1 and own[0]["lr_factor"] == factor and not age_ids & groups[0]
    with pytest.raises(ConfigError, match="age_lr_factor"):
        tiny_config(note_age_s=AGES_S, age_lr_factor=0.0)
