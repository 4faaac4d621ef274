"""The moving average of part of a model's state (`orchestrion.nn.weight_average`)."""

from __future__ import annotations

import pytest
import torch

from orchestrion.nn.weight_average import WeightAverage


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))


def test_average_follows_the_closed_form_of_an_exponential_moving_average():
    net = _net()
    start = net[0].weight.detach().clone()
    average = WeightAverage(net, prefixes=("0.",), decay=0.8, warmup=False)
    values = [net[0].weight.detach().clone() + k for k in (1.0, -2.0, 0.5)]
    for value in values:
        with torch.no_grad():
            net[0].weight.copy_(value)
        average.update(net)
    expected = start
    for value in values:
        expected = 0.8 * expected + 0.2 * value
    assert torch.allclose(average.averaged_state()["0.weight"], expected, atol=1e-6)
    assert not torch.allclose(expected, values[-1])  # the average is not the last weights


def test_average_covers_only_the_named_part_and_copies_integer_buffers():
    net = _net()
    average = WeightAverage(net, prefixes=("1.",), decay=0.9)
    assert set(average.averaged_state()) == {"1.weight", "1.bias", "1.running_mean", "1.running_var",
                                             "1.num_batches_tracked"}
    net.train()
    for _ in range(3):
        net(torch.randn(5, 3))
        average.update(net)
    assert int(average.averaged_state()["1.num_batches_tracked"]) == 3
    assert int(average.updates) == 3


def test_warmup_starts_with_a_short_memory_and_reaches_the_decay():
    average = WeightAverage(_net(), prefixes=("0.",), decay=0.999)
    assert average.current_decay() == pytest.approx(0.1)
    average.updates.fill_(100_000)
    assert average.current_decay() == pytest.approx(0.999)


def test_average_survives_a_state_dict_round_trip():
    net = _net()
    average = WeightAverage(net, prefixes=("0.", "2."), decay=0.5)
    with torch.no_grad():
        net[2].weight.add_(1.0)
    average.update(net)
    restored = WeightAverage(_net(), prefixes=("0.", "2."), decay=0.5)
    restored.load_state_dict(average.state_dict())
    assert all(torch.equal(restored.averaged_state()[k], v) for k, v in average.averaged_state().items())
    assert int(restored.updates) == 1


def test_reset_restarts_from_the_current_weights():
    net = _net()
    average = WeightAverage(net, prefixes=("0.",), decay=0.5)
    with torch.no_grad():
        net[0].weight.add_(2.0)
    average.update(net)
    with torch.no_grad():
        net[0].weight.mul_(3.0)
    average.reset(net)
    assert torch.equal(average.averaged_state()["0.weight"], net[0].weight)
    assert int(average.updates) == 0


@pytest.mark.parametrize("decay", [-0.1, 1.0])
def test_decay_outside_zero_to_one_is_refused(decay):
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(_net(), prefixes=("0.",), decay=decay)


def test_prefixes_that_name_nothing_are_refused():
    with pytest.raises(ValueError, match="no state entries"):
        WeightAverage(_net(), prefixes=("generator.",), decay=0.5)
