"""Phase reconstruction: Fast Griffin-Lim, inverse STFT with a given phase, convergence.

``griffin_lim`` is the Fast Griffin-Lim Algorithm (FGLA) of Perraudin, Balazs and
Søndergaard, "A fast Griffin-Lim algorithm", WASPAA 2013, with librosa's conventions
(librosa.griffinlim): same STFT framing, same momentum form, same output length.

It runs entirely in the frame domain, which is where the speed comes from. One
iteration projects the current spectrogram onto the set of consistent spectrograms
(inverse STFT then STFT) and then onto the set with the target magnitude. Done with
``torch.istft``/``torch.stft`` that costs, per iteration, a centre padding, a window
envelope and a trim. Here the padded time axis is kept throughout: the inverse is
irfft -> window -> overlap-add -> multiply by a precomputed ``1 / window-sum-square``
that is also zero outside the signal (which is exactly what trimming and re-padding with
zeros would do), and the analysis is a strided view (unfold) -> window -> rfft. Spectra
are laid out (frames, freq) so every FFT runs over contiguous rows; elementwise work is
in place; the magnitude projection uses ``x * S / sqrt(re^2 + im^2)`` on the real view
instead of ``abs`` (hypot) and a complex division. (FFT results go to fresh tensors:
torch's ``out=`` FFT variants compute into a temporary and copy.) The result matches
librosa's iteration to float32 rounding.

Work is streamed in chunks of ``CHUNK_FRAMES`` frames, so each chunk's frames and spectra
stay in cache from the inverse FFT through the overlap-add, the re-analysis and the
projections, instead of every pass sweeping ~15 MB arrays (60 s at 16 kHz). On CPU the
frames (or the batch items) are cut into segments of about ``SEGMENT_FRAMES`` frames
that ``workers`` Python threads take from a shared counter, each running single-threaded
torch kernels (torch releases the GIL inside them); the threads meet once per iteration
and the few frames at the seams between segments are finished serially. That beats
torch's per-operation OpenMP parallelism (one barrier per tensor op, thousands per
iteration here) and degrades gracefully when other processes share the cores.

Threads: on CPU, torch's intra-op thread count is set to 1 for the duration of the call
and restored afterwards (the threadpoolctl pattern); the parallelism comes from the
workers instead. Do not run other torch work in parallel Python threads meanwhile.
"""

from __future__ import annotations

import contextlib
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from numbers import Integral

import torch
from torch import Tensor

from orchestrion.audio.spectral import Stft, analysis_window
from orchestrion.audio.vocoder_phase import vocoder_phase_frames
from orchestrion.errors import ConfigError, NonFiniteAudioError
from orchestrion.torch_threads import single_threaded

__all__ = ["griffin_lim", "istft_with_phase", "spectral_convergence"]


def _check_magnitude(magnitude: Tensor, n_fft: int) -> Tensor:
    magnitude = torch.as_tensor(magnitude)
    if magnitude.is_complex():
        raise ConfigError("griffin_lim takes a magnitude spectrogram; pass spec.abs()")
    if magnitude.ndim < 2 or magnitude.shape[-2] != n_fft // 2 + 1:
        raise ConfigError(
            f"magnitude must be shaped (..., {n_fft // 2 + 1} frequency bins for n_fft "
            f"{n_fft}, frames), got shape {tuple(magnitude.shape)}"
        )
    if magnitude.numel() == 0:
        raise ConfigError(f"magnitude spectrogram is empty (shape {tuple(magnitude.shape)})")
    if not magnitude.is_floating_point() or magnitude.dtype in (torch.float16, torch.bfloat16):
        magnitude = magnitude.to(torch.float32)
    lowest, highest = torch.aminmax(magnitude)  # one pass; NaN and +-inf show up here
    if not (math.isfinite(float(lowest)) and math.isfinite(float(highest))):
        bad = int((~torch.isfinite(magnitude)).sum())
        raise NonFiniteAudioError(f"magnitude spectrogram holds {bad} NaN or infinite values")
    if float(lowest) < 0:
        raise ConfigError(
            "magnitude spectrogram holds negative values; clamp model outputs with "
            ".clamp(min=0) before phase reconstruction"
        )
    return magnitude


def _polar(magnitude: Tensor, phase: Tensor) -> Tensor:
    """magnitude * exp(i * phase); same as torch.polar, ~3x faster on CPU."""
    return torch.complex(magnitude * torch.cos(phase), magnitude * torch.sin(phase))


def _output_length(
    n_frames: int, n_fft: int, hop_length: int, center: bool, length: int | None
) -> int:
    """Samples of the reconstruction; checks `length` gives back `n_frames` frames."""
    if length is None:
        return hop_length * (n_frames - 1) if center else hop_length * (n_frames - 1) + n_fft
    if length < 0:
        raise ConfigError(f"length must be a non-negative number of samples, got {length}")
    padded = length + 2 * (n_fft // 2) if center else length
    frames_of_length = 1 + (padded - n_fft) // hop_length if padded >= n_fft else 0
    if frames_of_length != n_frames:
        raise ConfigError(
            f"a {length}-sample signal has {frames_of_length} STFT frames (n_fft {n_fft}, "
            f"hop {hop_length}), but the magnitude has {n_frames}"
        )
    return int(length)


@torch.no_grad()
def griffin_lim(
    magnitude: Tensor,
    n_fft: int,
    hop_length: int,
    n_iter: int = 32,
    momentum: float = 0.99,
    init: str | Tensor | None = "random",
    length: int | None = None,
    win_length: int | None = None,
    generator: torch.Generator | None = None,
    window: str | tuple | float = "hann",
    center: bool = True,
    workers: int | None = None,
) -> Tensor:
    """Estimate a waveform whose STFT magnitude is `magnitude` (Fast Griffin-Lim).

    Parameters
    ----------
    magnitude : |X|, non-negative, shape (..., n_fft // 2 + 1, frames); any leading dims
        are independent items, processed together.
    n_fft, hop_length, win_length, window, center : the STFT that produced `magnitude`
        (librosa conventions, see ``orchestrion.audio.spectral.Stft``).
    n_iter : iterations (0 allowed: one inverse STFT with the initial phase).
    momentum : FGLA momentum alpha; 0 gives plain Griffin-Lim, 0.99 is librosa's default.
        Values above 1 may diverge.
    init : "random" (uniform phase, from `generator`), "vocoder" (phase-vocoder integration
        of the magnitude's peaks, ``orchestrion.audio.vocoder_phase``: far fewer
        iterations needed), "zeros" (zero phase; None means the same, as in librosa), or a
        tensor of initial phases in radians shaped like `magnitude`.
    length : samples of the output; default ``hop_length * (frames - 1)`` when centred.
        It must be a length whose STFT has ``frames`` frames.
    generator : torch.Generator for the random initial phase (on the magnitude's device).
    workers : CPU threads (default ``torch.get_num_threads()``); fewer are used when the
        input is too short to split. Ignored on other devices.

    Returns
    -------
    Tensor (..., length): the waveform, same dtype (float32 unless float64 came in) and
    device as `magnitude`.

    Notes
    -----
    Update per iteration (c = alpha / (1 + alpha), librosa's form, equal to FGLA's
    ``t_n = c_n + alpha (c_n - c_{n-1})`` up to a scale the magnitude projection removes)::

        rebuilt = STFT(ISTFT(angles)); angles = rebuilt - c * previous_rebuilt
        angles = magnitude * angles / |angles|
    """
    win_length = n_fft if win_length is None else win_length
    if not isinstance(n_fft, Integral) or n_fft < 2:
        raise ConfigError(f"n_fft must be an integer of at least 2 samples, got {n_fft!r}")
    if not isinstance(hop_length, Integral) or hop_length < 1:
        raise ConfigError(f"hop_length must be a positive number of samples, got {hop_length!r}")
    if not isinstance(win_length, Integral) or not 1 <= win_length <= n_fft:
        raise ConfigError(f"win_length must be between 1 and n_fft ({n_fft}), got {win_length!r}")
    if not isinstance(n_iter, Integral) or n_iter < 0:
        raise ConfigError(f"n_iter must be a non-negative integer, got {n_iter!r}")
    if not momentum >= 0:
        raise ConfigError(f"momentum must be >= 0, got {momentum}")
    if workers is not None and (not isinstance(workers, Integral) or workers < 1):
        raise ConfigError(f"workers must be a positive number of threads, got {workers!r}")
    n_fft, hop_length = int(n_fft), int(hop_length)
    win_length, n_iter = int(win_length), int(n_iter)
    magnitude = _check_magnitude(magnitude, n_fft)
    dtype, device = magnitude.dtype, magnitude.device
    lead, n_freq, n_frames = magnitude.shape[:-2], magnitude.shape[-2], magnitude.shape[-1]
    out_length = _output_length(n_frames, n_fft, hop_length, center, length)

    # (batch, frames, freq): every FFT then runs over contiguous rows.
    target = magnitude.reshape(-1, n_freq, n_frames).transpose(1, 2).contiguous()
    batch = target.shape[0]

    if isinstance(init, Tensor):
        if init.shape != magnitude.shape:
            raise ConfigError(
                f"initial phase must have the magnitude's shape {tuple(magnitude.shape)}, "
                f"got {tuple(init.shape)}"
            )
        phase = init.to(device=device, dtype=dtype).reshape(batch, n_freq, n_frames).transpose(1, 2)
        angles = _polar(target, phase.contiguous())
    elif init == "random":
        phase = torch.rand(target.shape, generator=generator, device=device, dtype=dtype)
        angles = _polar(target, phase.mul_(2.0 * math.pi))
    elif init == "vocoder":
        angles = _polar(target, vocoder_phase_frames(target, n_fft, hop_length))
    elif init in ("zeros", None):
        angles = torch.complex(target, torch.zeros_like(target))
    else:
        raise ConfigError(
            f"init must be 'random', 'vocoder', 'zeros' or a phase tensor, got {init!r}"
        )

    window = analysis_window(window, win_length, n_fft).to(device=device, dtype=dtype)
    engine = _FastGriffinLim(
        target, angles, window, n_fft, hop_length, center, out_length, momentum, workers
    )
    wave = engine.run(n_iter)
    return wave.reshape(*lead, out_length)


# --------------------------------------------------------------------------- engine
#: frames per streamed chunk: large enough to amortise Python dispatch, small enough that
#: a chunk's frames and spectra (~1 MB each) stay in cache between the passes over them.
CHUNK_FRAMES = 256
#: frames per work unit handed to a worker (a few chunks; seams between units cost little).
SEGMENT_FRAMES = 512


@dataclass
class _Segment:
    """Frames [first, stop) of items [items]: one work unit, streamed in chunks.

    Signal blocks (hop-sized) [first, stop) belong to the segment, plus the tail blocks
    [frames, blocks) if it ends the signal. Its frames' contributions to the next segment's
    first K - 1 blocks go to a private `overflow` buffer, merged after each pass, so
    workers never write the same memory.
    """

    items: slice
    first: int
    stop: int
    chunk: int
    overflow: Tensor | None = None


class _FastGriffinLim:
    """FGLA state on the padded time axis, laid out (batch, frames, freq).

    Frame t covers blocks t .. t + K - 1 (K = ceil(n_fft / hop)) of the padded signal,
    stored as (batch, blocks, hop). One pass streams each segment chunk by chunk:
    synthesise the chunk (irfft, window, overlap-add into its blocks), scale blocks that
    are now complete by the inverse window envelope, re-analyse every frame whose blocks
    are all complete (unfold, window, rfft) and apply the momentum and magnitude
    projections to it. Frames next to a segment boundary are finished serially after the
    workers meet. The arithmetic is that of the plain full-signal algorithm.
    """

    def __init__(
        self,
        target: Tensor,
        angles: Tensor,
        window: Tensor,
        n_fft: int,
        hop_length: int,
        center: bool,
        out_length: int,
        momentum: float,
        workers: int | None,
    ) -> None:
        self.target, self.angles, self.window = target, angles, window
        self.n_fft, self.hop = n_fft, hop_length
        self.n_items, self.n_frames, self.n_freq = target.shape
        self.blocks_per_frame = math.ceil(n_fft / hop_length)
        self.n_blocks = self.n_frames + self.blocks_per_frame - 1
        self.momentum_scale = momentum / (1.0 + momentum)
        self.tiny = torch.finfo(target.dtype).tiny
        self.start = n_fft // 2 if center else 0
        self.out_length = out_length
        dtype, device = target.dtype, target.device

        # window-sum-square on the block grid: block t sums squared-window block j of
        # frames t - j, for every j with 0 <= t - j < frames
        squared = torch.zeros(self.blocks_per_frame * hop_length, dtype=dtype, device=device)
        squared[:n_fft] = window.square()
        squared = squared.view(self.blocks_per_frame, hop_length)
        envelope = torch.zeros(self.n_blocks, hop_length, dtype=dtype, device=device)
        for j in range(self.blocks_per_frame):
            envelope[j:j + self.n_frames] += squared[j]
        envelope = envelope.view(-1)
        inside = torch.zeros_like(envelope, dtype=torch.bool)
        inside[self.start:self.start + out_length] = True
        usable = inside & (envelope > self.tiny)
        # 1 / window-sum-square inside the signal and 0 outside: the inverse STFT, the trim
        # to `length` samples and the zero padding of the next analysis, in one multiply.
        inverse_envelope = torch.where(usable, 1.0 / torch.where(usable, envelope, 1.0), 0.0)
        self.inverse_envelope = inverse_envelope.view(self.n_blocks, hop_length)
        self.signal = target.new_empty(self.n_items, self.n_blocks, hop_length)
        self.signal_flat = self.signal.view(self.n_items, -1)
        # STFT of the last consistent estimate, per analysed run of frames (the runs are the
        # same every pass); new tensors replace old ones, nothing is copied
        self.rebuilt: dict[tuple[int, int, int], Tensor] = {}
        # (column slice, window slice) of each hop-sized block of a frame; the last may be short.
        # The synthesis window carries the inverse FFT's 1 / n_fft, so the irfft can skip
        # its own scaling pass (norm="forward").
        synthesis_window = window / n_fft
        self.frame_blocks = [
            (slice(j * hop_length, min((j + 1) * hop_length, n_fft)),
             synthesis_window[j * hop_length:min((j + 1) * hop_length, n_fft)])
            for j in range(self.blocks_per_frame)
        ]
        self.on_cpu = device.type == "cpu"
        self.segments = self._plan(device)
        requested = torch.get_num_threads() if workers is None else workers
        self.workers = max(1, min(requested, len(self.segments))) if device.type == "cpu" else 1
        most_items = max(seg.items.stop - seg.items.start for seg in self.segments)
        most_frames = max(seg.chunk for seg in self.segments) + 2 * self.blocks_per_frame
        self.scratch = [self._new_scratch(most_items, most_frames) for _ in range(self.workers)]

    # ---------------------------------------------------------------- planning
    def _plan(self, device: torch.device) -> list[_Segment]:
        """Cut (items, frames) into segments of about SEGMENT_FRAMES frames.

        Workers take segments from a shared counter, so a worker that the OS pauses
        (other processes on the cores) delays a pass by at most one segment.
        """
        n_items, n_frames, k = self.n_items, self.n_frames, self.blocks_per_frame
        if device.type != "cpu":  # one stream of whole-tensor ops; the device parallelises
            return [_Segment(slice(0, n_items), 0, n_frames, n_frames)]
        if n_frames < SEGMENT_FRAMES:  # short items: several per segment, whole
            per_segment = max(1, SEGMENT_FRAMES // n_frames)
            chunk = min(n_frames, max(2 * k, CHUNK_FRAMES // per_segment))
            return [
                _Segment(slice(i, min(i + per_segment, n_items)), 0, n_frames, chunk)
                for i in range(0, n_items, per_segment)
            ]
        parts = max(1, n_frames // SEGMENT_FRAMES)
        bounds = [round(n_frames * p / parts) for p in range(parts + 1)]
        segments = []
        for item in range(n_items):
            for p in range(parts):
                segment = _Segment(slice(item, item + 1), bounds[p], bounds[p + 1], CHUNK_FRAMES)
                if segment.stop < n_frames and k > 1:
                    segment.overflow = self.signal.new_zeros(1, k - 1, self.hop)
                segments.append(segment)
        return segments

    def _new_scratch(self, n_items: int, n_frames: int) -> tuple[Tensor, Tensor]:
        """Flat buffers (frames, power), viewed per chunk so every view is contiguous."""
        size = n_items * n_frames
        return self.signal.new_empty(size * self.n_fft), self.target.new_empty(size * self.n_freq)

    # ---------------------------------------------------------------- passes
    def run(self, n_iter: int) -> Tensor:
        """n_iter FGLA iterations, then the final synthesis; returns (batch, length)."""
        # Kernels run single-threaded, the parallelism is across workers: no barrier per
        # (small) tensor op, which stalls badly when other processes share the cores.
        with single_threaded() if self.on_cpu else contextlib.nullcontext():
            schedule = _Schedule(self, n_iter)
            if self.workers > 1:
                with ThreadPoolExecutor(self.workers - 1, thread_name_prefix="griffin-lim") as pool:
                    jobs = [
                        pool.submit(schedule.work, self.scratch[w]) for w in range(1, self.workers)
                    ]
                    schedule.work(self.scratch[0])
                    for job in jobs:
                        job.result()
            else:
                schedule.work(self.scratch[0])
        wave = self.signal_flat[:, self.start:self.start + self.out_length]
        if wave.shape[-1] < self.out_length:  # `length` longer than the frames cover
            wave = torch.nn.functional.pad(wave, (0, self.out_length - wave.shape[-1]))
        return wave.clone()

    def _finish_seam(self, seg: _Segment, analyse: bool, scratch: tuple[Tensor, Tensor]) -> None:
        """Merge `seg`'s overflow into the next segment's first blocks, finish the seam frames."""
        k = self.blocks_per_frame
        seam = slice(seg.stop, seg.stop + k - 1)
        self.signal[seg.items, seam].add_(seg.overflow).mul_(self.inverse_envelope[seam])
        if analyse:
            self._analyse(seg.items, seg.stop - k + 1, seg.stop + k - 1, scratch)

    def _stream_segment(self, seg: _Segment, scratch: tuple[Tensor, Tensor], analyse: bool) -> None:
        k = self.blocks_per_frame
        items, first, stop = seg.items, seg.first, seg.stop
        ends_signal = stop == self.n_frames
        owned_stop = self.n_blocks if ends_signal else stop
        # blocks before first + k - 1 also receive the previous segment's overflow
        settled_from = first + k - 1 if first > 0 else 0
        next_to_analyse = settled_from
        if seg.overflow is not None:
            seg.overflow.zero_()
        for a in range(first, stop, seg.chunk):
            b = min(a + seg.chunk, stop)
            # (FFTs into fresh tensors: torch's `out=` variants compute elsewhere and copy)
            # unscaled inverse FFT: the 1 / n_fft is in the synthesis window
            frames = torch.fft.irfft(self.angles[items, a:b], n=self.n_fft, dim=-1, norm="forward")
            # zero the blocks this chunk touches first, then overlap-add windowed frames
            zero_from = a + k - 1 if a > first else first
            zero_to = min(b + k - 1, owned_stop)
            if zero_to > zero_from:
                self.signal[items, zero_from:zero_to].zero_()
            for j, (columns, window_part) in enumerate(self.frame_blocks):
                width = window_part.shape[0]
                lo, hi = a + j, b + j
                own_hi = min(hi, owned_stop)
                if own_hi > lo:
                    self.signal[items, lo:own_hi, :width].addcmul_(
                        frames[:, : own_hi - lo, columns], window_part
                    )
                if hi > owned_stop:
                    spill = max(lo, owned_stop)
                    seg.overflow[:, spill - stop:hi - stop, :width].addcmul_(
                        frames[:, spill - lo:, columns], window_part
                    )
            # blocks no later frame of this segment touches are final: normalise them
            norm_from = max(a, settled_from)
            norm_to = b if b < stop else owned_stop
            if norm_to > norm_from:
                self.signal[items, norm_from:norm_to].mul_(self.inverse_envelope[norm_from:norm_to])
            if not analyse:
                continue
            if b < stop:
                ready = b - k + 1
            else:
                ready = self.n_frames if ends_signal else stop - k + 1
            if ready > next_to_analyse:
                self._analyse(items, next_to_analyse, ready, scratch)
                next_to_analyse = ready

    def _analyse(self, items: slice, first: int, stop: int, scratch: tuple[Tensor, Tensor]) -> None:
        """Re-analyse frames [first, stop) and apply the momentum and magnitude projections."""
        n_items, n = items.stop - items.start, stop - first
        frames_flat, power_flat = scratch
        if n_items * n * self.n_fft > frames_flat.numel():  # only for unusually short chunks
            frames_flat, power_flat = self._new_scratch(n_items, n)
        frames = frames_flat[: n_items * n * self.n_fft].view(n_items, n, self.n_fft)
        power = power_flat[: n_items * n * self.n_freq].view(n_items, n, self.n_freq)
        span = slice(first * self.hop, (stop - 1) * self.hop + self.n_fft)
        segment_signal = self.signal_flat[items, span]
        torch.mul(segment_signal.unfold(-1, self.n_fft, self.hop), self.window, out=frames)
        spectrum = torch.fft.rfft(frames, dim=-1)
        angles = self.angles[items, first:stop]
        key = (items.start, first, stop)
        previous = self.rebuilt.get(key)
        if previous is None:  # first iteration: no momentum yet
            angles.copy_(spectrum)
        else:
            torch.add(spectrum, previous, alpha=-self.momentum_scale, out=angles)
        self.rebuilt[key] = spectrum
        # angles *= target / |angles| on the real view: no hypot, no complex division
        pairs = torch.view_as_real(angles)
        real, imag = pairs[..., 0], pairs[..., 1]
        torch.mul(real, real, out=power)
        power.addcmul_(imag, imag).add_(self.tiny).rsqrt_().mul_(self.target[items, first:stop])
        angles.mul_(power)


class _Schedule:
    """Dataflow order of the work: no global barrier between iterations.

    Tasks are "pass i of segment s" (synthesis, plus analysis while i < n_iter) and
    "seam i after segment s" (merge the overflow into the next segment, finish the frames
    that straddle the seam). Pass i + 1 of a segment waits only for the seams on both of
    its sides from pass i; a seam waits for both of its segments' pass i. So a worker the
    OS pauses holds up its neighbours, not everyone, and seams run in parallel too.
    """

    def __init__(self, engine: _FastGriffinLim, n_iter: int) -> None:
        self.engine = engine
        self.n_iter = n_iter
        self.n_passes = n_iter + 1
        self.segments = engine.segments
        count = len(self.segments)
        self.passes_done = [0] * count
        # segments without a seam after them count as having all their seams done
        self.seams_done = [
            0 if seg.overflow is not None else self.n_passes for seg in self.segments
        ]
        self.busy_segment = [False] * count
        self.busy_seam = [False] * count
        seams = sum(self.n_passes - done for done in self.seams_done)
        self.remaining = count * self.n_passes + seams
        self.condition = threading.Condition()
        self.failure: BaseException | None = None

    def _ready(self) -> tuple[str, int, int] | None:
        """The ready task with the lowest pass index (seams first), or None."""
        best = None
        for s, seg in enumerate(self.segments):
            i = self.seams_done[s]
            if (seg.overflow is not None and not self.busy_seam[s] and i < self.n_passes
                    and self.passes_done[s] > i and self.passes_done[s + 1] > i):
                if best is None or i < best[2] or (i == best[2] and best[0] == "pass"):
                    best = ("seam", s, i)
            i = self.passes_done[s]
            if self.busy_segment[s] or i >= self.n_passes:
                continue
            left_ok = s == 0 or self.segments[s - 1].overflow is None or self.seams_done[s - 1] >= i
            right_ok = seg.overflow is None or self.seams_done[s] >= i
            if left_ok and right_ok and (best is None or i < best[2]):
                best = ("pass", s, i)
        return best

    def work(self, scratch: tuple[Tensor, Tensor]) -> None:
        """Run ready tasks until all are done (called by every worker thread)."""
        engine = self.engine
        while True:
            with self.condition:
                task = None
                while self.remaining > 0 and self.failure is None:
                    task = self._ready()
                    if task is not None:
                        break
                    self.condition.wait()
                if task is None:
                    return
                kind, s, i = task
                (self.busy_seam if kind == "seam" else self.busy_segment)[s] = True
            try:
                if kind == "seam":
                    engine._finish_seam(self.segments[s], i < self.n_iter, scratch)
                else:
                    engine._stream_segment(self.segments[s], scratch, i < self.n_iter)
            except BaseException as exc:
                with self.condition:
                    self.failure = exc
                    self.condition.notify_all()
                raise
            with self.condition:
                if kind == "seam":
                    self.busy_seam[s] = False
                    self.seams_done[s] += 1
                else:
                    self.busy_segment[s] = False
                    self.passes_done[s] += 1
                self.remaining -= 1
                self.condition.notify_all()


def istft_with_phase(
    magnitude: Tensor,
    phase: Tensor,
    n_fft: int,
    hop_length: int,
    win_length: int | None = None,
    window: str | tuple | float = "hann",
    center: bool = True,
    length: int | None = None,
) -> Tensor:
    """Inverse STFT of ``magnitude * exp(i * phase)`` (differentiable).

    Parameters
    ----------
    magnitude : |X|, shape (..., n_fft // 2 + 1, frames).
    phase : phase in radians, same shape (e.g. ``torch.angle`` of the original STFT).
    n_fft, hop_length, win_length, window, center : the STFT's parameters.
    length : output samples (see ``Stft.inverse``).

    Returns
    -------
    Tensor (..., samples).
    """
    magnitude, phase = torch.as_tensor(magnitude), torch.as_tensor(phase)
    if magnitude.shape != phase.shape:
        raise ConfigError(
            f"magnitude {tuple(magnitude.shape)} and phase {tuple(phase.shape)} must have one shape"
        )
    stft = Stft(n_fft, hop_length, win_length, window, center).to(magnitude.device)
    return stft.inverse(torch.polar(magnitude, phase.to(magnitude.dtype)), length=length)


def spectral_convergence(target_mag: Tensor, estimate_mag: Tensor) -> Tensor:
    """Spectral convergence ||T - E||_F / ||T||_F per item.

    Parameters
    ----------
    target_mag, estimate_mag : magnitudes (..., freq, frames) of one shape.

    Returns
    -------
    Tensor (...): 0 = identical; 1 = estimate silent. A silent target gives 0 when the
    estimate is silent too and a very large value otherwise.
    """
    target_mag, estimate_mag = torch.as_tensor(target_mag), torch.as_tensor(estimate_mag)
    if target_mag.shape != estimate_mag.shape or target_mag.ndim < 2:
        raise ConfigError(
            f"spectral convergence needs two (..., freq, frames) magnitudes of one shape, got "
            f"{tuple(target_mag.shape)} and {tuple(estimate_mag.shape)}"
        )
    error = torch.linalg.vector_norm(target_mag - estimate_mag, dim=(-2, -1))
    norm = torch.linalg.vector_norm(target_mag, dim=(-2, -1))
    return error / norm.clamp(min=torch.finfo(norm.dtype).tiny)
