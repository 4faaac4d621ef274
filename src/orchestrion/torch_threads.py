"""Run torch kernels single-threaded for a while (the threadpoolctl pattern)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """torch's intra-op thread count is 1 inside, then restored.

    For many small tensor ops (or ops in several Python threads at once): torch's OpenMP
    pool pays a barrier per op, which stalls badly when other processes share the cores.
    """
    previous = torch.get_num_threads()
    if previous > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if previous > 1:
            torch.set_num_threads(previous)
