"""What the instrument classifier sees when it is trained alone (``--classifier-only``).

A draw is a tuple of parts ``(piece, part, start frame, gain dB)`` whose sum is one
training chunk. Four settings of the config shape the draws:

- ``classifier_part_sampling="balanced"`` draws chunks of 1, 2, 3 and 4-or-more parts
  equally often. A quartet has 4 one-part subsets but a single four-part one, so the
  natural draw shows the classifier few of the dense mixes it fails on. ``"dense"`` draws
  them in proportion to their part counts, 1 : 2 : 3 : 4.
- ``classifier_remix`` is the fraction of multi-part draws whose parts come from different
  pieces (each a one-part chunk, as many as the drawn chunk had). A piece's instruments
  are fixed, so without it the classifier may name a piece's ensemble from its music.
- ``classifier_part_gain_db`` sets each part's level at random within +-this many dB, so
  a part is named whether it leads or accompanies.
- ``classifier_mute_part`` is the fraction of multi-part draws with one part muted: its gain
  is ``-inf`` dB, so its notes are in the chunk's roll but not in its audio or labels.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from orchestrion.systems.organ.data import OrganChunks

BALANCE_TOP = 4
"""Balanced draws pool chunks of this many parts or more into one group."""
REMIX_TRIES = 20
"""Attempts to find a one-part chunk of a piece not yet in a remix before taking any."""

Part = tuple[int, int, int, float]
"""One part of a draw: (piece index, part index, start frame, gain in dB)."""


class ClassifierDraws(Sampler[tuple[Part, ...]]):
    """Yields `epoch_size` draws (tuples of :data:`Part`) from `chunks`, deterministic in `seed`."""

    def __init__(self, chunks: OrganChunks, epoch_size: int, seed: int) -> None:
        config = chunks.config
        self.chunks = chunks
        self.epoch_size = epoch_size
        self.sampling = config.classifier_part_sampling
        self.remix = config.classifier_remix
        self.mute = config.classifier_mute_part
        self.gain_db = config.classifier_part_gain_db
        self.rng = random.Random(seed)
        self.groups: dict[int, list[int]] = {}
        for i, (_, subset, _) in enumerate(chunks.index):
            self.groups.setdefault(min(len(subset), BALANCE_TOP), []).append(i)
        self.sizes = sorted(self.groups)

    def __len__(self) -> int:
        return self.epoch_size

    def __iter__(self) -> Iterator[tuple[Part, ...]]:
        for _ in range(self.epoch_size):
            yield self.draw()

    def draw(self) -> tuple[Part, ...]:
        rng, index = self.rng, self.chunks.index
        if self.sampling == "natural":
            p, subset, start = index[rng.randrange(len(index))]
        else:
            group = self.groups[self._part_count()]
            p, subset, start = index[group[rng.randrange(len(group))]]
        if len(subset) > 1 and 1 in self.groups and rng.random() < self.remix:
            parts = self._remixed(len(subset))
        else:
            parts = [(p, k, start) for k in subset]
        gains = [rng.uniform(-self.gain_db, self.gain_db) if self.gain_db else 0.0 for _ in parts]
        if len(parts) > 1 and self.mute and rng.random() < self.mute:
            gains[rng.randrange(len(parts))] = -math.inf
        return tuple((p, k, s, gain) for (p, k, s), gain in zip(parts, gains, strict=True))

    def _part_count(self) -> int:
        """A part-count group: each equally often (``balanced``) or in proportion to its count (``dense``)."""
        if self.sampling == "dense":
            return self.rng.choices(self.sizes, weights=self.sizes)[0]
        return self.sizes[self.rng.randrange(len(self.sizes))]

    def _remixed(self, size: int) -> list[tuple[int, int, int]]:
        """`size` one-part chunks, each of another piece while there are pieces enough."""
        singles, index, rng = self.groups[1], self.chunks.index, self.rng
        parts: list[tuple[int, int, int]] = []
        for _ in range(size):
            for _ in range(REMIX_TRIES):
                p, subset, start = index[singles[rng.randrange(len(singles))]]
                if all(p != q for q, _, _ in parts):
                    break
            parts.append((p, subset[0], start))
        return parts


class ClassifierMixes(Dataset):
    """The chunk of a draw: ``audio`` (the parts' sum), ``instruments`` (the slots of the
    parts that sound, multi-hot) and, for a classifier with the pitch hint, ``roll`` (the
    notes of every part, muted ones too, as in :class:`OrganChunks`)."""

    def __init__(self, chunks: OrganChunks) -> None:
        self.chunks = chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, draw: tuple[Part, ...]) -> dict[str, torch.Tensor]:
        chunks = self.chunks
        sounding = [part for part in draw if part[3] != -math.inf]
        audio = sum(chunks.part_audio(p, k, start, gain) for p, k, start, gain in sounding)
        config = chunks.config
        labels = np.zeros(config.n_slots, dtype=np.float32)
        for p, k, _, _ in sounding:
            labels[chunks.pieces[p].slots[k]] = 1.0
        item = {"audio": torch.from_numpy(audio),  # float32: the stems' type
                "instruments": torch.from_numpy(labels)}
        if config.classifier_pitch_hint:
            roll = np.zeros((config.n_slots, 128, config.chunk_frames), dtype=np.float32)
            for p, k, start, _ in draw:
                chunks.add_part_roll(roll, p, k, start)
            item["roll"] = torch.from_numpy(roll)
        return item
