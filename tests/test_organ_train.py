"""orGAN training data and training steps on a tiny URMP-format build."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from orchestrion.data.build_urmp import build_urmp
from orchestrion.errors import ConfigError
from orchestrion.systems.organ.data import OrganChunks, TargetSpectrogram, load_pieces, subsets_for
from orchestrion.systems.organ.encoding import AGE_UNKNOWN, note_ages
from orchestrion.systems.organ.module import OrganModule, RegimeSampler
from orchestrion.systems.organ.presets import get_preset

TINY = dict(base_width=4, discriminator_width=0.125, chunk_s=1.0, batch_size=4)


@pytest.fixture(scope="module")
def tiny_urmp(tmp_path_factory):
    out = tmp_path_factory.mktemp("urmp")
    build_urmp(out, scores="music21:bach", limit=2, sample_rate=16000, progress=False, mix_peak=None)
    return out


@pytest.fixture(scope="module")
def tiny_pieces(tiny_urmp):
    return load_pieces(tiny_urmp, get_preset("cpu", **TINY), progress=False)


def test_every_nonempty_subset_is_mixed():
    assert len(subsets_for(4, None)) == 15
    assert len(subsets_for(5, None)) == 31
    assert subsets_for(3, 1) == [(0,), (1,), (2,)]


def test_chunks_pair_audio_with_their_notes(tiny_pieces):
    config = get_preset("cpu", **TINY)
    chunks = OrganChunks(tiny_pieces, config)
    assert len(chunks) > 0
    item = chunks[len(chunks) // 2]
    frames = config.chunk_frames
    assert item["roll"].shape == (16, 128, frames) and item["onsets"].shape == (16, 128, frames)
    assert item["audio"].shape == ((frames - 1) * config.hop_length,)
    slots_playing = set(torch.nonzero(item["roll"].amax(dim=(1, 2)) > 0).flatten().tolist())
    assert slots_playing == set(torch.nonzero(item["instruments"]).flatten().tolist())
    # where the roll is silent across all slots for a stretch, the audio is quiet too
    spec = TargetSpectrogram(config)(item["audio"][None])[0]
    assert spec.shape == (config.n_bins, frames)
    assert torch.isfinite(spec).all() and float(spec.max()) > 0.1
    # silent chunks were dropped: every item has notes in at least a quarter of its frames
    for index in range(0, len(chunks), max(1, len(chunks) // 20)):
        active = chunks[index]["roll"].amax(dim=(0, 1)) > 0
        assert float(active.float().mean()) >= 0.25


def test_energy_follows_the_roll(tiny_pieces):
    """Frames with notes carry far more energy than frames without (audio and roll aligned)."""
    config = get_preset("cpu", **TINY)
    piece = tiny_pieces[0]
    target = TargetSpectrogram(config)
    spec = target(torch.from_numpy(piece.stems[0])[None])[0]
    active = piece.rolls[0].max(axis=0) > 0
    n = min(spec.shape[-1], len(active))
    energy = spec[:, :n].sum(dim=0).numpy()
    assert energy[active[:n]].mean() > 3 * max(energy[~active[:n]].mean(), 1e-6)


def test_chunk_note_ages_are_the_whole_pieces_cropped(tiny_pieces):
    """Ages look back before a chunk: a note begun before it has its true age, not 'unknown'."""
    config = get_preset("cpu", **TINY, note_age_s=[0.05, 0.2])
    chunks = OrganChunks(tiny_pieces, config)
    assert "ages" not in OrganChunks(tiny_pieces, get_preset("cpu", **TINY))[0]
    checked = carried = 0
    for i in range(0, len(chunks), max(1, len(chunks) // 40)):
        p, subset, start = chunks.index[i]
        if len(subset) != 1:
            continue
        piece, k = tiny_pieces[p], subset[0]
        whole = note_ages(torch.from_numpy(piece.rolls[k]), torch.from_numpy(piece.onsets[k]))
        frames = min(config.chunk_frames, whole.shape[-1] - start)
        item = chunks[i]
        expected = whole[:, start:start + frames]
        ages = item["ages"][piece.slots[k], :, :frames]
        near = expected <= config.note_age_lookback  # older notes may be cut off: their features are ~0
        torch.testing.assert_close(ages[near], expected[near], rtol=0, atol=0)
        assert bool((ages[item["roll"][piece.slots[k], :, :frames] <= 0] == AGE_UNKNOWN).all())
        carried += int(bool((ages[:, 0] < AGE_UNKNOWN).any() & (ages[:, 0] > 0).any()))
        checked += 1
    assert checked >= 5 and carried >= 1


def test_label_counts_and_single_pool(tiny_pieces):
    config = get_preset("cpu", **TINY)
    chunks = OrganChunks(tiny_pieces, config)
    counts = chunks.label_counts()
    assert counts.sum() == sum(len(subset) for _, subset, _ in chunks.index)
    singles = chunks.single_instrument_indices()
    assert singles and all(len(chunks.index[i][1]) == 1 for i in singles)
    sampler = RegimeSampler(chunks, single_only=True, epoch_size=50, seed=0)
    assert all(len(chunks.index[i][1]) == 1 for i in sampler)


@pytest.mark.parametrize("output_prior", ["none", "harmonic"])
def test_a_few_steps_lower_the_loss(tiny_pieces, output_prior):
    torch.manual_seed(0)
    config = get_preset("cpu", **{**TINY, "base_width": 8}, learning_rate=1e-2, output_prior=output_prior)
    chunks = OrganChunks(tiny_pieces, config)
    batch = torch.utils.data.default_collate([chunks[i] for i in range(0, 4 * 7, 7)])
    module = OrganModule(config, label_counts=chunks.label_counts().tolist(), n_chunks=len(chunks))
    module.model.set_inference_dropout(False)
    g_opt = torch.optim.Adam(module.model.generator_parameters(), lr=config.learning_rate)
    real, condition, labels = module._prepare(batch)

    def generator_loss() -> torch.Tensor:
        fake = module.model(batch["roll"])
        return module.loss.generator_loss(fake, real, None, labels, use_classifier=False)["total"]

    before, after = _descend(generator_loss, g_opt, 20)
    assert np.isfinite(after) and after < 0.75 * before, (before, after)


def _descend(loss: Callable[[], torch.Tensor], optimizer: torch.optim.Optimizer, steps: int) -> tuple[float, float]:
    """The loss before and after `steps` optimiser steps on it."""
    before = float(loss().detach())
    for _ in range(steps):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    return before, float(loss().detach())


@pytest.mark.parametrize("network", ["strided", "mel_cnn"])
def test_the_classifier_alone_learns_the_instruments_of_real_chunks(tiny_pieces, network):
    torch.manual_seed(0)
    mel = {"classifier_network": "mel_cnn", "classifier_width": 0.5}
    config = get_preset("cpu", **TINY, learning_rate=3e-3, **(mel if network == "mel_cnn" else {}))
    chunks = OrganChunks(tiny_pieces, config)
    batch = torch.utils.data.default_collate([chunks[i] for i in range(0, 8 * 5, 5)])
    module = OrganModule(config, label_counts=chunks.label_counts().tolist(), n_chunks=len(chunks),
                         classifier_only=True)
    real, _, labels = module._prepare(batch)
    discriminator = module.model.discriminator
    parameters = module.classifier_parameters()
    ids = {id(p) for p in parameters}
    own = (discriminator.mel_classifier,) if network == "mel_cnn" else (discriminator.classifier_features,
                                                                          discriminator.classifier)
    assert ids == {id(p) for m in own for p in m.parameters()}
    frozen = [*module.model.generator.parameters(), *discriminator.trunk.parameters(), *discriminator.patch_head.parameters()]
    assert frozen and not ids & {id(p) for p in frozen}
    optimizer = torch.optim.Adam(parameters, lr=config.learning_rate)

    def loss() -> torch.Tensor:
        return module.loss.instrument(discriminator.classify(real), labels)

    before, after = _descend(loss, optimizer, 30)
    assert after < 0.5 * before, (before, after)
    # the classifier of forward() is the same function
    module.model.eval()
    condition = module.model.condition(batch["roll"])
    assert torch.allclose(discriminator(real, condition).instrument_logits, discriminator.classify(real))


def test_classifier_only_needs_a_classifier_on_the_spectrogram():
    with pytest.raises(ConfigError, match="classifier"):
        OrganModule(get_preset("cpu", **TINY, instrument_weight=0.0), classifier_only=True)


def test_a_warmup_needs_the_runs_length():
    """Without it the run's progress stays 0 and the warm-up would hold the rate at 0."""
    with pytest.raises(ConfigError, match="lr_warmup_fraction"):
        OrganModule(get_preset("cpu", **TINY, lr_warmup_fraction=0.1))
    assert OrganModule(get_preset("cpu", **TINY, lr_warmup_fraction=0.1), total_steps=10).total_steps == 10


def test_a_note_bank_starts_near_its_pieces_and_a_few_steps_lower_the_loss_further(tiny_pieces):
    from orchestrion.systems.organ.note_bank import estimate_note_bank
    from orchestrion.systems.organ.train import start_note_bank

    torch.manual_seed(0)
    settings = {**TINY, "base_width": 8}
    harmonic = get_preset("cpu", **settings, learning_rate=1e-2, output_prior="harmonic")
    banked = harmonic.replace(output_prior="bank", bank_age_s=1.0)
    estimate = estimate_note_bank(tiny_pieces, banked)
    banked = banked.replace(bank_keys=len(estimate.keys))
    chunks = OrganChunks(tiny_pieces, banked)
    batch = torch.utils.data.default_collate([chunks[i] for i in range(0, 4 * 7, 7)])
    losses = {}
    for name, config in (("harmonic", harmonic), ("bank", banked)):
        torch.manual_seed(0)
        module = OrganModule(config, label_counts=chunks.label_counts().tolist(), n_chunks=len(chunks))
        if name == "bank":
            start_note_bank(module.model, estimate)
        module.model.set_inference_dropout(False)
        real, _, labels = module._prepare(batch)

        def generator_loss(module=module, real=real, labels=labels) -> torch.Tensor:
            fake = module.model(batch["roll"], batch["onsets"], batch.get("ages"))
            return module.loss.generator_loss(fake, real, None, labels, use_classifier=False)["total"]

        parameters = module.model.generator_parameters() + module.model.lobe_parameters()
        losses[name] = _descend(generator_loss, torch.optim.Adam(parameters, lr=1e-3), 10)
    # estimated from these very pieces, the bank starts closer than the harmonic prior does
    # (both under the same untrained U-Net, whose free output adds to either)
    assert losses["bank"][0] < 0.95 * losses["harmonic"][0], losses
    assert np.isfinite(losses["bank"][1]) and losses["bank"][1] < losses["bank"][0], losses
