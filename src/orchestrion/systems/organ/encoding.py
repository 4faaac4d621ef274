"""Input encodings: a multi-track pianoroll becomes an image on the spectrogram's frequency grid.

The generator is a U-Net of local convolutions, so its input must already put each note
near the frequency rows where its sound will be. Three encodings, chosen by name in the
config (``OrganConfig.encoding``):

``"binary"`` (the seed's)
    The roll as 0/1, pitch p on row p, rows 128 and up zero. Pitch and frequency only
    line up by accident: MIDI pitch 69 (440 Hz) sits on row 69, but its sound is at bin
    28 for 16 kHz / n_fft 1024.
``"velocity"``
    The same layout with the roll's values (``velocity / 127`` from
    ``score_to_pianoroll(..., mode="velocity")``), clipped to [0, 1].
``"harmonic"``
    Each active pitch writes its first K harmonics (amplitude ``k ** -decay``) at their
    STFT bins, linearly interpolated between the two nearest bins: pitch -> frequency
    becomes a fixed matrix (128, n_bins), a buffer, applied to the roll's values (so a
    velocity roll carries loudness). Optionally the matrix is a learned parameter
    initialised from the templates (``learned=True``). This is the encoding the
    2-core probe found necessary (SYSTEMS.md §1, measured note (a)).

Every encoding keeps one channel per instrument slot and may append one onset channel
per slot (``onset_channels=True``), encoded the same way; onsets come from
``score_to_pianoroll(..., onsets=True)`` or, when not given, from the roll's rising
edges.

Note-age features (``note_age_s`` in the config) are encoded the same way: for each time
constant tau, a sounding note contributes ``value * exp(-age / tau)``, age being the frames
since its onset (:func:`note_ages`). They feed the generator's own input branch
(``Generator.age_input``), not the discriminator.

The last row (the Nyquist bin, ``n_fft / 2``) is always zero: no note is placed there.
The generator does not read it (its head produces that bin), so encodings keep it
empty by construction; the discriminator sees the encoded roll on exactly the
spectrogram's grid.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from orchestrion.errors import ConfigError
from orchestrion.nn.pitch import pitch_to_hz

EncodingName = Literal["binary", "velocity", "harmonic"]
ENCODING_NAMES: tuple[str, ...] = ("binary", "velocity", "harmonic")
N_PITCHES = 128
"""MIDI pitches 0..127: the pitch axis of every roll."""


def harmonic_templates(
    sample_rate: int,
    n_fft: int,
    n_harmonics: int = 8,
    decay: float = 1.0,
    n_pitches: int = N_PITCHES,
) -> Tensor:
    """Pitch -> STFT-bin matrix of harmonic templates, shape (n_pitches, n_fft // 2 + 1).

    Row p holds harmonics k = 1..`n_harmonics` of MIDI pitch p, amplitude ``k ** -decay``,
    at fractional bin ``k * f0 * n_fft / sample_rate``, split between the two nearest
    bins by linear interpolation. Partials that would touch the Nyquist bin or lie above
    it are left out, so the last column is zero.

    Parameters
    ----------
    sample_rate : int
        Audio sample rate, Hz.
    n_fft : int
        STFT size, samples; bins are ``sample_rate / n_fft`` Hz apart.
    n_harmonics : int
        Partials per note (1 = fundamental only).
    decay : float
        Amplitude of partial k is ``k ** -decay`` (1.0: 1, 1/2, 1/3, ...).
    """
    if not (int(n_harmonics) == n_harmonics and n_harmonics >= 1):
        raise ConfigError(
            f"the harmonic encoding needs at least 1 harmonic per note, got {n_harmonics!r}"
        )
    if not decay >= 0:
        raise ConfigError(f"harmonic amplitude decay must be >= 0, got {decay!r}")
    n_bins = n_fft // 2 + 1
    templates = torch.zeros(n_pitches, n_bins, dtype=torch.float64)
    f0 = pitch_to_hz(torch.arange(n_pitches))
    bin_hz = sample_rate / n_fft
    for k in range(1, int(n_harmonics) + 1):
        position = k * f0 / bin_hz
        inside = position <= n_bins - 2  # both neighbours below the Nyquist bin
        pitches = torch.nonzero(inside).flatten()
        lower = position[inside].floor().long()
        upper_share = position[inside] - lower
        amplitude = float(k) ** -float(decay)
        templates.index_put_((pitches, lower), amplitude * (1.0 - upper_share), accumulate=True)
        templates.index_put_((pitches, lower + 1), amplitude * upper_share, accumulate=True)
    return templates.to(torch.float32)


def _unit_values(roll: Tensor) -> Tensor:
    """The roll's values as floats clipped to [0, 1] (``velocity / 127`` rolls pass unchanged)."""
    return (roll if roll.is_floating_point() else roll.float()).clamp(0.0, 1.0)


def slots_playing(roll: Tensor) -> Tensor:
    """Which slots of each roll have a note: (B, S, 128, T) -> (B, S) bool.

    By each slot's maximum, one pass with no boolean copy of the roll (~20x faster than
    ``(roll > 0).any``, which the per-window render paid several times a window).
    """
    if roll.numel() == 0:
        return torch.zeros(roll.shape[:2], dtype=torch.bool, device=roll.device)
    return roll.flatten(2).amax(dim=-1) > 0


def played_pitches(levels: Tensor) -> Tensor:
    """Indices of the pitches above 0 in any lane, from each lane's maxima over time
    (..., 128) -> (k,): a part plays a few of the 128, and the rest multiply to zeros."""
    return (levels > 0).reshape(-1, levels.shape[-1]).any(dim=0).nonzero().flatten()


def rising_edges(roll: Tensor) -> Tensor:
    """Onset roll from a roll (..., T): 1 where a lane turns on (frame 0 counts if on)."""
    active = roll > 0
    before = F.pad(active[..., :-1], (1, 0), value=False)
    return (active & ~before).to(roll.dtype)


_LOWEST_EXPONENT = -80.0
"""Note-age decays ``exp(x)`` with x below this are 0 (see ``RollEncoding.age_image``)."""
AGE_UNKNOWN = 1.0e4
"""The age, in frames, of a cell whose onset was not seen (a note begun before the frames
given, or silence): old enough that every note-age feature is 0."""


def note_ages(roll: Tensor, onsets: Tensor) -> Tensor:
    """Frames since the onset of the note sounding in each cell, (..., T) -> float32 (..., T).

    0 on an onset frame. A cell that is silent, or whose note sounds from the first frame
    without an onset there (it began before), gets :data:`AGE_UNKNOWN`: give the frames
    before a window too (``note_age_lookback``) and crop, for exact ages.
    """
    if roll.shape != onsets.shape:
        raise ConfigError(f"onset roll {tuple(onsets.shape)} and pianoroll {tuple(roll.shape)} differ")
    n_frames = roll.shape[-1]
    sounding = roll.reshape(-1, n_frames) > 0
    ages = torch.full(sounding.shape, AGE_UNKNOWN, dtype=torch.float32, device=roll.device)
    lanes = sounding.any(dim=-1).nonzero().flatten()  # a roll is sparse: only these are counted
    if lanes.numel():
        frames = torch.arange(n_frames, device=roll.device).expand(len(lanes), n_frames)
        struck = onsets.reshape(-1, n_frames)[lanes] > 0
        last_onset = torch.where(struck, frames, -1).cummax(dim=-1).values
        known = sounding[lanes] & (last_onset >= 0)
        counted = (frames - last_onset).to(torch.float32)
        ages[lanes] = torch.where(known, counted, torch.full_like(counted, AGE_UNKNOWN))
    return ages.reshape(roll.shape)


class ChannelSubset(NamedTuple):
    """An input image given by some of its channels, the others all zero and not built.

    ``image`` (B, len(channels), n_bins, T) holds channels ``channels`` (int indices) of the
    full (B, C, n_bins, T) image: e.g. the slots that sound of an encoded roll, or of the
    note-age features.
    """

    image: Tensor
    channels: Tensor


class RollEncoding(nn.Module):
    """Base of the encodings: (B, slots, 128, T) roll -> (B, C, n_bins, T) image.

    Subclasses define :meth:`values` (what a sounding note contributes) and
    :meth:`to_frequency` (pitch axis -> frequency axis).

    Parameters
    ----------
    n_bins : int
        Rows of the output: the spectrogram's bins, ``n_fft // 2 + 1``.
    n_slots : int
        Instrument slots (channels of the roll). Default 16.
    onset_channels : bool
        Append one onset channel per slot (C = 2 * n_slots instead of n_slots).
    """

    name: str = ""

    def __init__(self, n_bins: int, n_slots: int = 16, onset_channels: bool = False) -> None:
        super().__init__()
        if not (int(n_bins) == n_bins and n_bins >= 2):
            raise ConfigError(f"the spectrogram needs at least 2 frequency bins, got {n_bins!r}")
        if not (int(n_slots) == n_slots and n_slots >= 1):
            raise ConfigError(f"the roll needs at least 1 instrument slot, got {n_slots!r}")
        self.n_bins = int(n_bins)
        self.n_slots = int(n_slots)
        self.onset_channels = bool(onset_channels)

    @property
    def out_channels(self) -> int:
        """Channels of the encoded image."""
        return self.n_slots * (2 if self.onset_channels else 1)

    def extra_repr(self) -> str:
        return f"n_bins={self.n_bins}, n_slots={self.n_slots}, onset_channels={self.onset_channels}"

    def values(self, roll: Tensor) -> Tensor:
        """What a roll cell contributes, (B, S, 128, T) -> same shape."""
        raise NotImplementedError

    def to_frequency(self, lanes: Tensor) -> Tensor:
        """Pitch axis to frequency axis: (B, S, 128, T) -> (B, S, n_bins, T)."""
        raise NotImplementedError

    def _check(self, roll: Tensor, what: str) -> None:
        if roll.dim() != 4 or roll.shape[1] != self.n_slots or roll.shape[2] != N_PITCHES:
            raise ConfigError(
                f"the {what} must have shape (batch, {self.n_slots} slots, {N_PITCHES} pitches, "
                f"frames), got {tuple(roll.shape)}"
            )

    def encode_slots(self, roll: Tensor, slots: Tensor, onsets: Tensor | None = None) -> ChannelSubset:
        """The encoded image's channels of some slots only (the others stay unbuilt):
        ``forward(roll, onsets)[:, channels]``, with ``channels`` the slots (and, with onset
        channels, ``n_slots + slots`` after them). (B, S, 128, T), (L,) -> (B, L or 2 L, n_bins, T).
        """
        self._check(roll, "pianoroll")
        image = self.to_frequency(self.values(roll[:, slots]))
        if not self.onset_channels:
            return ChannelSubset(image, slots)
        chosen = rising_edges(roll[:, slots]) if onsets is None else self._onsets(roll, onsets)[:, slots]
        onset_image = self.to_frequency((chosen > 0).to(image.dtype))
        return ChannelSubset(torch.cat([image, onset_image], dim=1), torch.cat([slots, slots + self.n_slots]))

    def _onsets(self, roll: Tensor, onsets: Tensor | None) -> Tensor:
        """The given onset roll, checked, or the roll's rising edges."""
        if onsets is None:
            return rising_edges(roll)
        self._check(onsets, "onset roll")
        if onsets.shape != roll.shape:
            raise ConfigError(f"onset roll {tuple(onsets.shape)} and pianoroll {tuple(roll.shape)} differ")
        return onsets

    def forward(self, roll: Tensor, onsets: Tensor | None = None) -> Tensor:
        """Encode a roll.

        Parameters
        ----------
        roll : Tensor, (B, S, 128, T)
            Pianoroll, 0 where silent; 1 (binary) or ``velocity / 127`` where sounding.
        onsets : Tensor, (B, S, 128, T), optional
            Onset roll (1 at each note's first frame). Used only with
            ``onset_channels``; derived from the roll's rising edges when omitted.

        Returns
        -------
        Tensor, (B, C, n_bins, T), C = S or 2 S; the last row (Nyquist) is zero.
        """
        self._check(roll, "pianoroll")
        image = self.to_frequency(self.values(roll))
        if not self.onset_channels:
            return image
        onset_image = self.to_frequency((self._onsets(roll, onsets) > 0).to(image.dtype))
        return torch.cat([image, onset_image], dim=1)

    def age_image(self, roll: Tensor, ages: Tensor, scales: tuple[float, ...], slots: Tensor) -> Tensor:
        """Note-age features of some slots: (B, S, 128, T) roll and ages (frames), slot
        indices (L,) -> (B, L * K, n_bins, T).

        Channel ``j * K + k`` holds slot ``slots[j]``'s notes weighted by
        ``exp(-age / scales[k])`` (K = len(scales), in frames), placed on the frequency
        axis like the roll. Only the slots asked for are computed (those that sound).
        """
        self._check(roll, "pianoroll")
        if ages.shape != roll.shape:
            raise ConfigError(f"note ages {tuple(ages.shape)} and pianoroll {tuple(roll.shape)} differ")
        values = self.values(roll[:, slots])
        rates = 1.0 / torch.tensor(scales, dtype=values.dtype, device=values.device)
        exponents = ages[:, slots].to(values.dtype).unsqueeze(2) * -rates[:, None, None]
        # below e^-80 (2e-35) the decay is 0: exp of numbers whose result underflows takes the
        # math library's slow path, ~17x slower, and unknown ages (AGE_UNKNOWN) all would
        gone = exponents < _LOWEST_EXPONENT
        decays = torch.exp(exponents.clamp_(min=_LOWEST_EXPONENT)).masked_fill_(gone, 0.0)
        lanes = (values.unsqueeze(2) * decays).flatten(1, 2)  # (B, L * K, 128, T)
        return self.to_frequency(lanes)


class _PitchRowEncoding(RollEncoding):
    """Pitch p on row p, rows 128 .. n_bins - 1 zero (the seed's layout)."""

    def __init__(self, n_bins: int, n_slots: int = 16, onset_channels: bool = False) -> None:
        super().__init__(n_bins, n_slots, onset_channels)
        if self.n_bins - 1 < N_PITCHES:
            raise ConfigError(
                f"the '{self.name}' encoding puts the {N_PITCHES} pitches on the first "
                f"{N_PITCHES} frequency rows, but the spectrogram has only {self.n_bins} bins "
                "(n_fft >= 256 is needed); use 'harmonic'"
            )

    def to_frequency(self, lanes: Tensor) -> Tensor:
        return F.pad(lanes, (0, 0, 0, self.n_bins - N_PITCHES))


class BinaryRollEncoding(_PitchRowEncoding):
    """The seed's encoding: 1 where a note sounds, pitch p on row p.

    (B, S, 128, T) -> (B, C, n_bins, T).
    """

    name = "binary"

    def values(self, roll: Tensor) -> Tensor:
        return (roll > 0).to(roll.dtype if roll.is_floating_point() else torch.float32)


class VelocityRollEncoding(_PitchRowEncoding):
    """The roll's values (``velocity / 127``) clipped to [0, 1], pitch p on row p."""

    name = "velocity"

    def values(self, roll: Tensor) -> Tensor:
        return _unit_values(roll)


class HarmonicRollEncoding(RollEncoding):
    """Harmonic templates: each note's first harmonics at their STFT bins, per slot.

    ``image[b, s, f, t] = sum_p values[b, s, p, t] * templates[p, f]`` with
    :func:`harmonic_templates`; values are the roll's, clipped to [0, 1].

    Parameters
    ----------
    sample_rate, n_fft : int
        The spectrogram's sample rate (Hz) and STFT size; ``n_bins = n_fft // 2 + 1``.
    n_harmonics : int
        Partials per note. Default 8.
    decay : float
        Partial k has amplitude ``k ** -decay``. Default 1.0.
    learned : bool
        Make the (128, n_bins - 1) matrix below Nyquist a trainable parameter
        initialised from the templates. Default False (a fixed buffer).
    n_slots, onset_channels :
        As in :class:`RollEncoding`.
    """

    name = "harmonic"
    templates: Tensor

    def __init__(
        self,
        sample_rate: int,
        n_fft: int,
        n_harmonics: int = 8,
        decay: float = 1.0,
        learned: bool = False,
        n_slots: int = 16,
        onset_channels: bool = False,
    ) -> None:
        super().__init__(n_fft // 2 + 1, n_slots, onset_channels)
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.n_harmonics = int(n_harmonics)
        self.decay = float(decay)
        templates = harmonic_templates(sample_rate, n_fft, n_harmonics, decay)
        self.register_buffer("templates", templates)
        self.learned = bool(learned)
        self.refined: nn.Parameter | None = None
        if self.learned:
            self.refined = nn.Parameter(templates[:, :-1].clone())

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, sample_rate={self.sample_rate}, n_fft={self.n_fft}, "
            f"n_harmonics={self.n_harmonics}, decay={self.decay}, learned={self.learned}"
        )

    def pitch_to_bin_matrix(self) -> Tensor:
        """The matrix in use, (128, n_bins): the fixed templates or the learned refinement."""
        if self.refined is None:
            return self.templates
        return F.pad(self.refined, (0, 1))

    def values(self, roll: Tensor) -> Tensor:
        return _unit_values(roll)

    def to_frequency(self, lanes: Tensor) -> Tensor:
        # einsum "bspt,pf->bsft" written as a broadcast matmul: (F, P) @ (B, S, P, T)
        # yields (B, S, F, T) contiguous, with no permute/copy afterwards. Only the
        # (item, slot) lanes that sound are multiplied: a chunk plays a few of the 16 slots,
        # and a part rendered alone one; and only the pitches played: a part plays a few
        # of the 128 (the other rows would add exact zeros).
        matrix = self.pitch_to_bin_matrix().to(lanes.dtype).t()
        levels = lanes.amax(dim=-1)  # (B, S, P); lanes are >= 0; amax: no boolean copy
        sounding = levels.amax(dim=-1) > 0
        played = played_pitches(levels)
        if len(played) < matrix.shape[1]:
            matrix, lanes = matrix[:, played], lanes[..., played, :]
        if bool(sounding.all()):
            return torch.matmul(matrix, lanes)
        image = lanes.new_zeros(*lanes.shape[:-2], matrix.shape[0], lanes.shape[-1])
        image[sounding] = torch.matmul(matrix, lanes[sounding])
        return image


def build_encoding(
    name: str,
    *,
    sample_rate: int,
    n_fft: int,
    n_slots: int = 16,
    onset_channels: bool = False,
    n_harmonics: int = 8,
    harmonic_decay: float = 1.0,
    learned: bool = False,
) -> RollEncoding:
    """The encoding called `name` ("binary", "velocity" or "harmonic") for a spectrogram grid."""
    if learned and name != "harmonic":
        raise ConfigError(
            f"a learned refinement exists only for the 'harmonic' encoding, not {name!r}"
        )
    if name == "binary":
        encoding: RollEncoding = BinaryRollEncoding(n_fft // 2 + 1, n_slots, onset_channels)
    elif name == "velocity":
        encoding = VelocityRollEncoding(n_fft // 2 + 1, n_slots, onset_channels)
    elif name == "harmonic":
        encoding = HarmonicRollEncoding(
            sample_rate, n_fft, n_harmonics, harmonic_decay, learned, n_slots, onset_channels
        )
    else:
        raise ConfigError(
            f"unknown input encoding {name!r}; choose one of {', '.join(ENCODING_NAMES)}"
        )
    return encoding


__all__ = [
    "AGE_UNKNOWN",
    "ENCODING_NAMES",
    "BinaryRollEncoding",
    "ChannelSubset",
    "HarmonicRollEncoding",
    "RollEncoding",
    "VelocityRollEncoding",
    "build_encoding",
    "harmonic_templates",
    "note_ages",
    "played_pitches",
    "rising_edges",
    "slots_playing",
]
