"""An exponential moving average of part of a model's state (weights and buffers).

A GAN's generator drifts from step to step; the average over the last few thousand steps
is steadier and usually better than the last weights (Karras et al., 2018; Yazici et al.,
2019). :class:`WeightAverage` keeps that average for the state entries whose names start
with given prefixes, e.g. only the generator of a GAN. It is an ``nn.Module`` of buffers,
so it is saved and restored with the module that owns it (a Lightning checkpoint).

>>> import torch
>>> net = torch.nn.Linear(1, 1, bias=False)
>>> with torch.no_grad():
...     _ = net.weight.fill_(3.0)
>>> average = WeightAverage(net, prefixes=("weight",), decay=0.5, warmup=False)
>>> with torch.no_grad():
...     _ = net.weight.fill_(1.0)
>>> average.update(net)
>>> float(average.averaged_state()["weight"])
2.0
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _key(name: str) -> str:
    return name.replace(".", "__")  # a buffer's name may not contain dots


def saved_average(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The averaged entries a :class:`WeightAverage` saved under `prefix` (e.g.
    ``"generator_average."``) in its owner's state dict, under the averaged module's names
    (what :meth:`WeightAverage.averaged_state` gives), without building the average."""
    return {key[len(prefix):].replace("__", "."): value for key, value in state.items()
            if key.startswith(prefix) and key != f"{prefix}updates"}


class WeightAverage(nn.Module):
    """``avg <- decay * avg + (1 - decay) * current`` after every :meth:`update`.

    With `warmup`, the decay used at update ``n`` is ``min(decay, (1 + n) / (10 + n))``,
    so the average follows the weights closely at first instead of holding on to the
    initial ones. Integer entries (BatchNorm's batch counter) are copied, not averaged.
    """

    def __init__(self, module: nn.Module, prefixes: tuple[str, ...], decay: float,
                 warmup: bool = True) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.warmup = warmup
        self.names = [name for name in module.state_dict() if name.startswith(prefixes)]
        if not self.names:
            raise ValueError(f"no state entries start with {', '.join(prefixes)}")
        state = module.state_dict()
        for name in self.names:
            self.register_buffer(_key(name), state[name].detach().clone())
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def reset(self, module: nn.Module) -> None:
        """Start the average afresh from `module`'s current state (e.g. after loading weights)."""
        state = module.state_dict()
        for name in self.names:
            getattr(self, _key(name)).copy_(state[name].detach())
        self.updates.zero_()

    def current_decay(self) -> float:
        """The decay the next :meth:`update` applies."""
        if not self.warmup:
            return self.decay
        n = int(self.updates)
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """Move the average towards `module`'s current state."""
        decay = self.current_decay()
        state = module.state_dict()
        for name in self.names:
            average: Tensor = getattr(self, _key(name))
            current = state[name].detach()
            if average.is_floating_point():
                average.lerp_(current.to(average.dtype), 1.0 - decay)
            else:
                average.copy_(current)
        self.updates += 1

    def averaged_state(self) -> dict[str, Tensor]:
        """The averaged entries under the owning module's names."""
        return {name: getattr(self, _key(name)) for name in self.names}
