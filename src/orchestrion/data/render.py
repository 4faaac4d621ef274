"""FluidSynth rendering of scores and single notes with any .sf2/.sf3 SoundFont.

Events are fed to the synthesizer one by one and audio is pulled between them, so timing
is sample-accurate and independent of FluidSynth's own MIDI player. Output is float32
(FluidSynth's float path, not its 16-bit one), mono unless asked for stereo.
"""

from __future__ import annotations

import ctypes
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi

from orchestrion.errors import ConfigError, OrchestrionError

SOUNDFONT_ENV = "ORCHESTRION_SOUNDFONT"
SOUNDFONT_SEARCH_PATHS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf3/FluidR3Mono_GM.sf3",
    "/usr/share/soundfonts/FluidR3Mono_GM.sf3",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/FluidR3_GM.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
)
DRUM_CHANNEL = 9
MELODIC_CHANNELS = tuple(c for c in range(16) if c != DRUM_CHANNEL)
BLOCK_SAMPLES = 4096
SYNTH_BLOCK = 64  # FluidSynth's internal block: events take effect on block boundaries
SILENT_PEAK = 1e-4
"""A rendered note whose peak stays below this is silence: the SoundFont has no sample for
it (FluidR3 plays nothing for violin above 101, alto sax above 84 or contrabass above 57)."""

PROBE_VELOCITY = 100
PROBE_HELD_S = 0.25
"""Velocity and held time of the notes that probe which pitches a SoundFont sounds."""


def is_silent(wave: np.ndarray) -> bool:
    """True if a render's peak stays below `SILENT_PEAK` (no sample at that key)."""
    return float(np.abs(wave).max(initial=0.0)) < SILENT_PEAK


class SoundFontNotFoundError(OrchestrionError):
    """No SoundFont was given and none was found in the usual system paths."""


class FluidSynthUnavailableError(OrchestrionError):
    """The FluidSynth library (libfluidsynth) cannot be loaded."""


def find_soundfont(soundfont: str | Path | None = None) -> Path:
    """Return the SoundFont to use: the one given, $ORCHESTRION_SOUNDFONT, or FluidR3_GM."""
    if soundfont is not None:
        path = Path(soundfont)
        if not path.is_file():
            raise SoundFontNotFoundError("SoundFont file not found", path)
        return path
    env = os.environ.get(SOUNDFONT_ENV)
    if env:
        return find_soundfont(env)
    for candidate in SOUNDFONT_SEARCH_PATHS:
        if Path(candidate).is_file():
            return Path(candidate)
    raise SoundFontNotFoundError(
        "no General MIDI SoundFont found (looked in "
        + ", ".join(SOUNDFONT_SEARCH_PATHS[:2])
        + "); install one with `apt-get install fluid-soundfont-gm`, "
        f"or pass --soundfont / set ${SOUNDFONT_ENV}"
    )


_FLUID_WARN = 2


def _load_fluidsynth():
    try:
        import fluidsynth  # noqa: PLC0415  (the import itself loads libfluidsynth)
    except (ImportError, OSError) as exc:
        raise FluidSynthUnavailableError(
            f"cannot load FluidSynth ({exc}); install it with `apt-get install fluidsynth`"
        ) from exc
    lib = fluidsynth._fl
    lib.fluid_synth_write_float.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                                            ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.fluid_synth_write_float.restype = ctypes.c_int
    lib.fluid_synth_get_sfont_by_id.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.fluid_synth_get_sfont_by_id.restype = ctypes.c_void_p
    lib.fluid_synth_add_sfont.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.fluid_synth_remove_sfont.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    # A synth made before its SoundFont is attached warns once per channel: not for users.
    lib.fluid_set_log_function(_FLUID_WARN, None, None)
    return fluidsynth, lib


@dataclass(frozen=True)
class _Event:
    time_s: float
    order: int  # at equal times: controls/programs (0) before note-offs (1) before note-ons (2)
    channel: int
    kind: str
    a: int
    b: int = 0


class FluidSynthRenderer:
    """Render pretty_midi scores or single notes to float32 audio with FluidSynth.

    Parameters
    ----------
    soundfont : .sf2/.sf3 path; None finds FluidR3_GM (see `find_soundfont`).
    sample_rate : output rate in Hz.
    gain : FluidSynth master gain (its default is 0.2; a full chorale then peaks near 0.2).
    reverb, chorus : FluidSynth's effects; off by default so renders are dry and exact.
    """

    def __init__(
        self,
        soundfont: str | Path | None = None,
        sample_rate: int = 16000,
        gain: float = 0.2,
        reverb: bool = False,
        chorus: bool = False,
    ) -> None:
        if not 4000 <= sample_rate <= 192000:
            raise ConfigError(f"sample rate {sample_rate} Hz is outside 4000-192000 Hz")
        self.soundfont = find_soundfont(soundfont)
        self.sample_rate = int(sample_rate)
        self._module, self._lib = _load_fluidsynth()
        self._settings = {"gain": float(gain), "samplerate": float(sample_rate), "channels": 16,
                          "synth.reverb.active": int(reverb), "synth.chorus.active": int(chorus)}
        # The SoundFont is loaded once, into a synth that only holds it; each render gets a
        # fresh synth sharing it, because FluidSynth's voices keep state across notes and a
        # reused synth renders the same score slightly differently depending on history.
        self._holder = self._new_synth()
        sfid = self._holder.sfload(str(self.soundfont))
        if sfid < 0:
            raise OrchestrionError("FluidSynth cannot load this SoundFont", self.soundfont)
        self._sfont = self._lib.fluid_synth_get_sfont_by_id(self._holder.synth, sfid)
        self._sounding: dict[int, frozenset[int]] = {}
        self._synth = None
        self._sfid = -1

    def _new_synth(self):
        settings = dict(self._settings)
        return self._module.Synth(gain=settings.pop("gain"), samplerate=settings.pop("samplerate"),
                                  channels=settings.pop("channels"), **settings)

    def close(self) -> None:
        """Free the synthesizer and the SoundFont."""
        if getattr(self, "_holder", None) is not None:
            self._holder.delete()
            self._holder = None

    def __enter__(self) -> FluidSynthRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ rendering
    def render_score(
        self,
        score: pretty_midi.PrettyMIDI,
        tail_s: float = 1.0,
        include_drums: bool = True,
        stereo: bool = False,
    ) -> np.ndarray:
        """Render a whole score (all tracks mixed).

        Returns float32 (samples,) or, with `stereo`, (2, samples); the length is the end of
        the last note plus at most `tail_s` seconds of release (cut early when silent).
        """
        instruments = [i for i in score.instruments if include_drums or not i.is_drum]
        end_s = _score_end_s(score)
        melodic = [i for i in instruments if not i.is_drum]
        drums = [i for i in instruments if i.is_drum]
        groups = [melodic[k:k + len(MELODIC_CHANNELS)] for k in range(0, len(melodic), len(MELODIC_CHANNELS))]
        if drums:
            groups = groups or [[]]
            groups[0] = groups[0] + drums
        mix = None
        for group in groups or [[]]:
            audio = self._render_instruments(group, end_s, tail_s)
            mix = audio if mix is None else _add_padded(mix, audio)
        return mix if stereo else mix.mean(axis=0)

    def render_stems(
        self, score: pretty_midi.PrettyMIDI, tail_s: float = 1.0, stereo: bool = False
    ) -> list[np.ndarray]:
        """Render each track of `score` alone; all stems share one length (the mix's)."""
        end_s = _score_end_s(score)
        stems = [self._render_instruments([inst], end_s, tail_s) for inst in score.instruments]
        n = max((s.shape[1] for s in stems), default=0)
        stems = [np.pad(s, ((0, 0), (0, n - s.shape[1]))) for s in stems]
        return stems if stereo else [s.mean(axis=0) for s in stems]

    def render_note(
        self,
        program: int,
        pitch: int,
        velocity: int,
        held_s: float = 3.0,
        release_s: float = 1.0,
        is_drum: bool = False,
    ) -> np.ndarray:
        """Render one note: held for `held_s`, then `release_s` of release; mono float32.

        The output is exactly round((held_s + release_s) * sample_rate) samples (NSynth's
        4 s = 3 s held + 1 s release at 16 kHz is 64,000 samples).
        """
        for name, value, lo, hi in (("program", program, 0, 127), ("pitch", pitch, 0, 127),
                                    ("velocity", velocity, 1, 127)):
            if not lo <= int(value) <= hi:
                raise ConfigError(f"{name} {value} is outside {lo}-{hi}")
        if held_s <= 0 or release_s < 0:
            raise ConfigError(f"held time must be > 0 and release >= 0 (got {held_s}, {release_s})")
        inst = pretty_midi.Instrument(program=int(program), is_drum=is_drum)
        inst.notes.append(pretty_midi.Note(int(velocity), int(pitch), 0.0, float(held_s)))
        total = int(round((held_s + release_s) * self.sample_rate))
        audio = self._render_instruments([inst], held_s, release_s, exact_samples=total)
        return audio.mean(axis=0)

    def sounding_pitches(self, program: int) -> frozenset[int]:
        """The MIDI pitches this SoundFont sounds for melodic `program` (probed once, cached).

        A SoundFont's preset covers only the keys it has samples for; other keys render as
        silence (below `SILENT_PEAK`), whatever the instrument's real range.
        """
        program = int(program)
        if program not in self._sounding:
            self._sounding[program] = frozenset(
                pitch for pitch in range(128)
                if not is_silent(self.render_note(program, pitch, PROBE_VELOCITY, PROBE_HELD_S, 0.0))
            )
        return self._sounding[program]

    def sounding_range(self, program: int, lowest: int, highest: int) -> tuple[int, int]:
        """The longest run of consecutive pitches in ``[lowest, highest]`` that `program` sounds.

        Raises
        ------
        ConfigError
            If the SoundFont sounds none of them.
        """
        sounding = self.sounding_pitches(program)
        runs: list[tuple[int, int]] = []
        for pitch in range(int(lowest), int(highest) + 1):
            if pitch not in sounding:
                continue
            if runs and runs[-1][1] == pitch - 1:
                runs[-1] = (runs[-1][0], pitch)
            else:
                runs.append((pitch, pitch))
        if not runs:
            raise ConfigError(
                f"the SoundFont {self.soundfont.name} sounds no pitch from {lowest} to {highest} "
                f"for GM program {program}"
            )
        return max(runs, key=lambda run: run[1] - run[0])  # the first of equally long runs

    # ------------------------------------------------------------------ internals
    def _open(self) -> None:
        """A fresh synth sharing the loaded SoundFont, so each render depends only on its input.

        Event times are quantised to FluidSynth's 64-sample block (its own granularity), and
        every pull is a whole number of blocks.
        """
        self._synth = self._new_synth()
        self._sfid = self._lib.fluid_synth_add_sfont(self._synth.synth, self._sfont)

    def _close_synth(self) -> None:
        self._lib.fluid_synth_remove_sfont(self._synth.synth, self._sfont)
        self._synth.delete()
        self._synth = None

    def _render_instruments(
        self,
        instruments: list[pretty_midi.Instrument],
        end_s: float,
        tail_s: float,
        exact_samples: int | None = None,
    ) -> np.ndarray:
        """Render `instruments` on separate channels into (2, samples) float32."""
        self._open()
        try:
            return self._render_events(instruments, end_s, tail_s, exact_samples)
        finally:
            self._close_synth()

    def _render_events(
        self,
        instruments: list[pretty_midi.Instrument],
        end_s: float,
        tail_s: float,
        exact_samples: int | None,
    ) -> np.ndarray:
        events: list[_Event] = []
        melodic_channels = iter(MELODIC_CHANNELS)
        for inst in instruments:
            channel = DRUM_CHANNEL if inst.is_drum else next(melodic_channels)
            bank = 128 if inst.is_drum else 0
            if self._synth.program_select(channel, self._sfid, bank, int(inst.program)) != 0 and not inst.is_drum:
                warnings.warn(f"SoundFont has no preset for GM program {inst.program}; using its default")
            events += _instrument_events(inst, channel)
        events.sort(key=lambda e: (e.time_s, e.order))
        chunks: list[np.ndarray] = []
        position = 0
        end = exact_samples if exact_samples is not None else int(round(end_s * self.sample_rate))
        for event in events:
            target = min(_to_block(event.time_s * self.sample_rate), _to_block(end, up=True))
            if target > position:
                chunks.append(self._pull(target - position))
                position = target
            self._apply(event)
        if end > position:
            chunks.append(self._pull(_to_block(end - position, up=True)))
            position += chunks[-1].shape[1]
        if exact_samples is None:
            tail_limit = end + int(round(tail_s * self.sample_rate))
            while position < tail_limit and self._synth.get_active_voice_count() > 0:
                chunks.append(self._pull(_to_block(min(BLOCK_SAMPLES, tail_limit - position), up=True)))
                position += chunks[-1].shape[1]
            end = min(position, tail_limit)
        audio = np.concatenate(chunks, axis=1) if chunks else np.zeros((2, 0), np.float32)
        return audio[:, :end]

    def _pull(self, n: int) -> np.ndarray:
        out = np.zeros((2, n), dtype=np.float32)
        for start in range(0, n, 1 << 16):
            count = min(1 << 16, n - start)
            left = out[0, start:]
            right = out[1, start:]
            self._lib.fluid_synth_write_float(self._synth.synth, count, left.ctypes.data, 0, 1, right.ctypes.data, 0, 1)
        return out

    def _apply(self, event: _Event) -> None:
        synth = self._synth
        if event.kind == "on":
            synth.noteon(event.channel, event.a, event.b)
        elif event.kind == "off":
            synth.noteoff(event.channel, event.a)
        elif event.kind == "cc":
            synth.cc(event.channel, event.a, event.b)
        elif event.kind == "bend":
            synth.pitch_bend(event.channel, event.a)


def _to_block(samples: float, up: bool = False) -> int:
    """Round a sample count to a whole number of FluidSynth blocks (nearest, or up)."""
    blocks = np.ceil(samples / SYNTH_BLOCK) if up else np.round(samples / SYNTH_BLOCK)
    return int(blocks) * SYNTH_BLOCK


def _instrument_events(inst: pretty_midi.Instrument, channel: int) -> list[_Event]:
    events = [_Event(c.time, 0, channel, "cc", int(c.number), int(c.value)) for c in inst.control_changes]
    events += [_Event(b.time, 0, channel, "bend", int(b.pitch)) for b in inst.pitch_bends]
    for note in inst.notes:
        if note.end <= note.start:
            continue
        events.append(_Event(note.start, 2, channel, "on", int(note.pitch), int(max(1, min(127, note.velocity)))))
        events.append(_Event(note.end, 1, channel, "off", int(note.pitch)))
    return events


def _score_end_s(score: pretty_midi.PrettyMIDI) -> float:
    ends = [n.end for inst in score.instruments for n in inst.notes]
    return max(ends, default=0.0)


def _add_padded(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = max(a.shape[1], b.shape[1])
    return np.pad(a, ((0, 0), (0, n - a.shape[1]))) + np.pad(b, ((0, 0), (0, n - b.shape[1])))


class RendererFactory:
    """Picklable per-process setup for dataset builds: makes a renderer with the build's
    SoundFont and sample rate once in each worker process (the SoundFont loads once)."""

    def __init__(self, soundfont: str | Path | None, sample_rate: int, gain: float = 0.2) -> None:
        self.soundfont = None if soundfont is None else str(soundfont)
        self.sample_rate = int(sample_rate)
        self.gain = float(gain)

    def __call__(self) -> FluidSynthRenderer:
        return FluidSynthRenderer(self.soundfont, sample_rate=self.sample_rate, gain=self.gain)
