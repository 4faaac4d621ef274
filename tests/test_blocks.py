"""BatchNorm folding: a convolution with its eval-mode BatchNorm folded in gives the same
outputs, and a folded generator refuses to be trained. The frequency context starts as the
identity and reaches exactly the rows it promises."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from orchestrion.errors import ConfigError
from orchestrion.nn.blocks import FrequencyContext, fold_batch_norm
from orchestrion.systems.organ import OrganModel, get_preset


def _norm_with_statistics(channels: int, seed: int) -> nn.BatchNorm2d:
    generator = torch.Generator().manual_seed(seed)
    norm = nn.BatchNorm2d(channels)
    with torch.no_grad():
        norm.running_mean.copy_(torch.randn(channels, generator=generator))
        norm.running_var.copy_(torch.rand(channels, generator=generator) * 3 + 0.1)
        norm.weight.copy_(torch.randn(channels, generator=generator))
        norm.bias.copy_(torch.randn(channels, generator=generator))
    return norm.eval()


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(3, 5, 3, padding=1, bias=True),
        nn.Conv2d(3, 5, 4, stride=2, bias=False),
        nn.ConvTranspose2d(3, 5, 4, stride=2, padding=1, bias=False),
        nn.ConvTranspose2d(3, 5, 2, bias=True),
    ],
)
def test_folded_convolution_gives_what_conv_then_norm_gave(conv: nn.Module) -> None:
    torch.manual_seed(0)
    norm = _norm_with_statistics(5, seed=1)
    x = torch.randn(2, 3, 9, 7)
    with torch.no_grad():
        expected = norm(conv(x))
        fold_batch_norm(conv, norm)
        torch.testing.assert_close(conv(x), expected, atol=1e-5, rtol=1e-5)


def test_only_a_batch_norm_with_statistics_folds() -> None:
    with pytest.raises(ConfigError, match="BatchNorm2d"):
        fold_batch_norm(nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2, track_running_stats=False))
    with pytest.raises(ConfigError, match="grouped"):
        fold_batch_norm(nn.Conv2d(2, 2, 1, groups=2), nn.BatchNorm2d(2))


def test_folded_generator_renders_the_same_and_cannot_train() -> None:
    torch.manual_seed(0)
    model = OrganModel(get_preset("cpu", base_width=4, discriminator_width=0.125))
    generator = model.generator
    norms = [m for m in generator.modules() if isinstance(m, nn.BatchNorm2d)]
    for k, norm in enumerate(norms):  # statistics far from the defaults, as after training
        norm.load_state_dict(_norm_with_statistics(norm.num_features, seed=k).state_dict())
    with pytest.raises(ConfigError, match="eval mode"):
        generator.fold_batch_norms()
    model.eval()
    model.set_inference_dropout(False)
    image = torch.rand(2, 16, 513, 20)
    with torch.no_grad():
        expected = generator(image)
        generator.fold_batch_norms()
        assert not any(isinstance(m, nn.BatchNorm2d) for m in generator.modules())
        torch.testing.assert_close(generator(image), expected, atol=1e-4, rtol=1e-4)
    with pytest.raises(ConfigError, match="cannot be trained"):
        generator.train()


def test_frequency_context_starts_as_the_identity_and_can_learn() -> None:
    torch.manual_seed(0)
    context = FrequencyContext(8, 3)
    x = torch.randn(2, 8, 40, 6)
    out = context(x)
    torch.testing.assert_close(out, x, rtol=0, atol=0)
    (out * torch.randn_like(out)).sum().backward()
    for block in context.blocks:
        mix = block[-1]
        assert mix.weight.grad is not None and float(mix.weight.grad.abs().max()) > 0


def test_frequency_context_reaches_one_plus_four_times_two_to_the_n_minus_one_rows() -> None:
    torch.manual_seed(1)
    n_blocks = 3
    context = FrequencyContext(4, n_blocks).double()
    for block in context.blocks:
        nn.init.normal_(block[-1].weight)
    x = torch.randn(1, 4, 64, 9, dtype=torch.float64)
    poked = x.clone()
    poked[0, 1, 32, 4] += 1.0
    with torch.no_grad():
        changed = (context(poked) - context(x)).abs().amax(dim=(0, 1))  # (rows, frames)
    rows = changed.amax(dim=1).nonzero().flatten()
    reach = 2 * (2**n_blocks - 1)  # 5-tap kernels dilated 1, 2, 4: 1 + 4 * (2**n - 1) rows in all
    assert (rows.min().item(), rows.max().item()) == (32 - reach, 32 + reach)
    frames = changed.amax(dim=0).nonzero().flatten()
    assert (frames.min().item(), frames.max().item()) == (4 - n_blocks, 4 + n_blocks)
    with pytest.raises(ConfigError, match="0 or more blocks"):
        FrequencyContext(4, -1)
