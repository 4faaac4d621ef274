"""The mel-band instrument classifier (``classifier_network="mel_cnn"``).

The strided classifier (the seed's) halves the spectrogram's 16 Hz bin grid in its first
convolution, so the partials of low instruments merge before it can tell them apart, and it
reads the log-power ``ln(1 + |X|^2)`` whose knee hides all but the top ~30 dB of a chunk.
This one reads what timbre classifiers in the literature read:

1. **Front end** (no weights): the power spectrum through a mel filterbank (Slaney, from
   30 Hz; 128 bands keep the bins' resolution below ~500 Hz and pool the highs), then dB re
   each chunk's loudest band, `range_db` deep (deaf to the overall level), centred on 0.
2. **VGG stack**: four blocks of two 3x3 convolutions (BatchNorm, ReLU), widths
   ``w, 2w, 4w, 8w``, each of the first three followed by 2x2 max pooling.
3. **Pitch hint** (optional): the score's pitches with the instruments erased, as an image
   on the spectrogram's bins, through the same front end as a second input channel.
4. **Head**: each frame's (channels x mel rows) features -> 256 by a 1x1 convolution
   (BatchNorm, ReLU); their mean and maximum over frames (a part that sounds in a few
   frames of a chunk sets the maximum) -> dropout -> one logit per slot.
5. **Voices** (optional, with the hint): the score's voices, one image per sounding
   instrument slot, the slots erased (each voice is read alone by the same weights, so the
   network cannot know which slot it came from). The network runs once per voice, with the
   voice's notes through the front end as a third input channel, and pools the frames
   where the voice sounds. Each voice gets its own logits: "who plays these notes", learnt
   from one label per voice instead of a set per chunk. (Notes given only to the last,
   coarsest block, 16 rows of ~190 Hz, did not bind: a voice of a four-part chunk named
   its own instrument in 38 % of chunks after 1,100 steps.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from orchestrion.audio.spectral import MelScale
from orchestrion.errors import ConfigError
from orchestrion.metrics.audio import peak_db_image

MEL_FMIN_HZ = 30.0
"""Lowest mel band edge: below the lowest note of the vocabulary (a double bass's E1, 41 Hz)."""
POOLED_BLOCKS = 3
"""VGG blocks followed by 2x2 max pooling (the last is not)."""
EMBEDDING = 256
"""Width of the per-frame embedding the head pools."""
HEAD_DROPOUT = 0.3
"""Dropout before the linear layer, in training only."""


def _vgg_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 Conv -> BatchNorm -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class MelClassifier(nn.Module):
    """Multi-hot instrument logits from log-power spectrograms.

    Parameters
    ----------
    sample_rate, n_fft : the spectrogram's STFT (Hz, samples).
    n_classes : instrument slots.
    n_mels : mel bands; a multiple of 8 (the three poolings halve it).
    base_width : channels of the first block (``w``).
    range_db : dB below each chunk's loudest band that the front end keeps.
    pitch_hint : also read a pitch-hint image (see :meth:`Discriminator.pitch_hint`).
    voices : name the instruments of each voice (needs `pitch_hint`; see :meth:`voice_logits`).

    Shapes
    ------
    forward(S, hint): (B, 1, n_fft // 2 + 1, T) log-power ``ln(1 + |X|^2)`` [and, with
    `pitch_hint`, a (B, 1, n_fft // 2 + 1, T) hint >= 0] -> (B, n_classes).
    voice_logits(S, hint, voices): the same, and voices (N, F, T) >= 0 of items `owner`
    (N,) -> (N, n_classes). T must be at least 8 frames.
    """

    def __init__(self, sample_rate: int, n_fft: int, n_classes: int, n_mels: int = 128,
                 base_width: int = 16, range_db: float = 80.0, pitch_hint: bool = False,
                 voices: bool = False) -> None:
        super().__init__()
        if voices and not pitch_hint:
            raise ConfigError("the mel classifier reads voices beside the pitch hint: voices needs pitch_hint")
        if n_mels < 8 or n_mels % 8:
            raise ConfigError(f"the mel classifier needs a multiple of 8 mel bands, got {n_mels!r}")
        if range_db <= 0:
            raise ConfigError(f"the mel classifier reads dB re each chunk's peak: range_db must be > 0, got {range_db!r}")
        self.mel = MelScale(sample_rate, n_fft, n_mels, fmin=MEL_FMIN_HZ, persistent=False)
        self.range_db = float(range_db)
        self.pitch_hint = bool(pitch_hint)
        self.voices = bool(voices)
        widths = [base_width * 2**i for i in range(POOLED_BLOCKS + 1)]
        inputs = 1 + self.pitch_hint + self.voices
        self.blocks = nn.ModuleList(
            _vgg_block(c_in, c_out) for c_in, c_out in zip([inputs, *widths[:-1]], widths, strict=True)
        )
        rows = n_mels // 2**POOLED_BLOCKS
        self.embed = nn.Sequential(
            nn.Conv1d(widths[-1] * rows, EMBEDDING, 1, bias=False),
            nn.BatchNorm1d(EMBEDDING),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(HEAD_DROPOUT), nn.Linear(2 * EMBEDDING, n_classes))

    def front(self, log_power: Tensor) -> Tensor:
        """(B, 1, F, T) log-power -> (B, 1, n_mels, T) mel dB re each item's loudest band, in
        [-range_db / 40, range_db / 40] (the loudest band at the top)."""
        return self.power_front(torch.expm1(log_power.clamp_min(0.0)))

    def power_front(self, power: Tensor) -> Tensor:
        """:meth:`front` of a (B, 1, F, T) power image (>= 0)."""
        return (peak_db_image(self.mel(power), self.range_db) - 0.5) * (self.range_db / 20.0)

    def forward(self, log_power: Tensor, hint: Tensor | None = None) -> Tensor:
        if self.voices:
            raise ConfigError("a mel classifier of voices names each voice: call voice_logits")
        return self._head(self._blocks(self._inputs(log_power, hint)))

    def voice_logits(self, log_power: Tensor, hint: Tensor, voices: Tensor, owner: Tensor) -> Tensor:
        """Logits (N, n_classes) of voices (N, F, T) (power images >= 0, e.g. one slot of the
        encoded roll each) sounding in the chunks `owner` (N,) (indices into the batch) of
        log-power spectrograms (B, 1, F, T) with their pitch hints (B, 1, F, T)."""
        if not self.voices:
            raise ConfigError("this mel classifier was built without voices")
        if voices.dim() != 3 or owner.shape != voices.shape[:1] or voices.shape[1:] != log_power.shape[-2:]:
            raise ConfigError(f"voices (voices, bins, frames) like the spectrogram {tuple(log_power.shape)} with "
                              f"one owner each; got {tuple(voices.shape)} and {tuple(owner.shape)}")
        x = torch.cat([self._inputs(log_power, hint)[owner], self.power_front(voices.unsqueeze(1))], dim=1)
        x = self._blocks(x)
        sounding = F.max_pool1d(voices.amax(dim=1, keepdim=True), 2**POOLED_BLOCKS).squeeze(1) > 0
        return self._head(x, sounding)

    def _inputs(self, log_power: Tensor, hint: Tensor | None) -> Tensor:
        """The front end of the spectrogram (B, 1, F, T) [and the hint] -> (B, 1 [+ 1], n_mels, T)."""
        if log_power.dim() != 4 or log_power.shape[1] != 1 or log_power.shape[-1] < 2**POOLED_BLOCKS:
            raise ConfigError("the mel classifier takes log-power spectrograms (batch, 1, bins, frames) "
                              f"of at least {2**POOLED_BLOCKS} frames; got {tuple(log_power.shape)}")
        x = self.front(log_power)
        if self.pitch_hint:
            if hint is None or hint.shape != log_power.shape:
                raise ConfigError("this mel classifier reads a pitch hint shaped like its spectrogram "
                                  f"{tuple(log_power.shape)}; got {None if hint is None else tuple(hint.shape)}")
            x = torch.cat([x, self.power_front(hint)], dim=1)  # the hint read as a power image
        return x

    def _blocks(self, x: Tensor) -> Tensor:
        """The VGG blocks: (B, inputs, n_mels, T) -> (B, 8w, n_mels / 8, T / 8)."""
        x = x.contiguous(memory_format=torch.channels_last)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i < POOLED_BLOCKS:
                x = F.max_pool2d(x, 2)
        return x

    def _head(self, x: Tensor, frames: Tensor | None = None) -> Tensor:
        """Last block's features (B, 8w, rows, T') -> logits, pooled over all frames or over
        the `frames` (B, T') that are True (all of them where none is)."""
        batch, channels, rows, n_frames = x.shape
        features = self.embed(x.reshape(batch, channels * rows, n_frames))
        if frames is None:
            return self.head(torch.cat([features.mean(dim=-1), features.amax(dim=-1)], dim=1))
        frames = frames | ~frames.any(dim=-1, keepdim=True)
        weight = frames.unsqueeze(1).to(features.dtype)
        mean = (features * weight).sum(dim=-1) / weight.sum(dim=-1)
        peak = features.masked_fill(~frames.unsqueeze(1), float("-inf")).amax(dim=-1)
        return self.head(torch.cat([mean, peak], dim=1))
