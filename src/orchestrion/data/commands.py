"""`orchestrion data ...`: build NSynth-, URMP-, pairs- and MIDI-format datasets with FluidSynth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrion.data.build import BuildReport, Shard, current_command

data_app = typer.Typer(help="Build NSynth-, URMP-, pairs- or MIDI-format datasets offline.",
                       no_args_is_help=True)

Workers = Annotated[int, typer.Option("--workers", "-j", help="Worker processes.")]
ShardOpt = Annotated[str, typer.Option("--shard", help="Build only shard k of N, e.g. 0/4.")]
SoundFont = Annotated[Path | None, typer.Option("--soundfont", help=".sf2/.sf3 (default FluidR3_GM).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


def _summary(report: BuildReport) -> str:
    manifest = report.manifest
    splits = ", ".join(f"{k} {v}" for k, v in manifest["splits"].items())
    left_out = f", {report.left_out} left out (see the manifest)" if report.left_out else ""
    summary = (f"{report.out_dir}: {report.built} built{left_out}, {report.skipped} already there; "
               f"{manifest['items_finished']}/{manifest['items_planned']} items, "
               f"{manifest['audio_seconds']:.1f} s of audio ({splits})")
    note = manifest.get("held_out_note")
    return summary + (f"\n{note}" if note else "")


def _split_names(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def register(app: typer.Typer, reports_errors) -> None:
    """Attach the `data` command group to the root app, with its error reporting."""

    @data_app.command("nsynth", short_help="Notes in NSynth's layout: 16 kHz, 4 s each.")
    @reports_errors
    def nsynth(
        out: Annotated[Path, typer.Argument(help="Output folder (nsynth-<split>/ inside).")],
        instruments: Annotated[str, typer.Option(help="Comma list: names, URMP codes or GM numbers.")] = "flute,clarinet,violin,trumpet",
        pitches: Annotated[str, typer.Option(help="MIDI range, clipped to each instrument's.")] = "21-108",
        velocities: Annotated[str, typer.Option(help="Comma list of velocities.")] = "25,50,75,100,127",
        heldout_pitches: Annotated[str, typer.Option(help="Pitches no instrument trains on ('' for none); default every D#.")] = "",
        valid_instruments: Annotated[str, typer.Option(help="Instruments only in valid (NSynth-style).")] = "",
        test_instruments: Annotated[str, typer.Option(help="Instruments only in test.")] = "",
        gain: Annotated[float, typer.Option(help="FluidSynth master gain (velocity-127 notes peak near 0.4 at 1.0).")] = 1.0,
        workers: Workers = 1, shard: ShardOpt = "0/1", soundfont: SoundFont = None, quiet: Quiet = False,
    ) -> None:
        """NSynth json/wav layout: 16 kHz, 4 s notes (3 s held + 1 s release)."""
        from orchestrion.data.build_nsynth import NSynthBuildConfig, build_nsynth, parse_int_list, parse_pitch_range

        config = NSynthBuildConfig(
            instruments=_split_names(instruments),
            pitches=parse_pitch_range(pitches),
            velocities=parse_int_list(velocities, "--velocities", 1, 127),
            valid_instruments=tuple(i.name for i in _resolve(valid_instruments)),
            test_instruments=tuple(i.name for i in _resolve(test_instruments)),
            soundfont=None if soundfont is None else str(soundfont),
            gain=gain,
            **({"heldout_pitches": parse_int_list(heldout_pitches, "--heldout-pitches")} if heldout_pitches else {}),
        )
        report = build_nsynth(out, config, workers=workers, shard=Shard.parse(shard), progress=not quiet,
                              command=current_command())
        print(_summary(report))

    @data_app.command("urmp", short_help="Pieces in URMP's layout: mix, parts, notes, F0s.")
    @reports_errors
    def urmp(
        out: Annotated[Path, typer.Argument(help="Output folder (one NN_Piece_codes/ folder per piece).")],
        scores: Annotated[str, typer.Option(help="music21:bach or a folder of MIDI files.")] = "music21:bach",
        ensembles: Annotated[str, typer.Option(help="';'-separated ensembles of codes, e.g. 'fl,cl,hn,bn;vn,vn,va,vc'; default: balanced draw over all 13.")] = "",
        sr: Annotated[int, typer.Option(help="Sample rate in Hz.")] = 48000,
        limit: Annotated[int | None, typer.Option(help="At most this many pieces.")] = None,
        seed: Annotated[int, typer.Option(help="Seed for instrument draws and the split.")] = 0,
        mix_peak: Annotated[float, typer.Option(help="Peak of each mix (fraction of full scale); 0 keeps FluidSynth's level.")] = 0.9,
        dynamics: Annotated[bool, typer.Option(help="Seeded per-part dynamics instead of the scores' velocities.")] = False,
        workers: Workers = 1, shard: ShardOpt = "0/1", soundfont: SoundFont = None, quiet: Quiet = False,
    ) -> None:
        """URMP layout: AuMix, AuSep per part, Notes_*.txt, F0s_*.txt, Sco_*.mid, split by piece."""
        from orchestrion.data.build_urmp import build_urmp

        report = build_urmp(out, scores=scores, ensembles=[e for e in ensembles.split(";") if e.strip()] or None,
                            sample_rate=sr, limit=limit, workers=workers, shard=shard, seed=seed,
                            soundfont=soundfont, progress=not quiet, mix_peak=mix_peak or None,
                            dynamics=dynamics)
        print(_summary(report))

    @data_app.command("pairs", short_help="The same notes and phrases on two instruments.")
    @reports_errors
    def pairs(
        out: Annotated[Path, typer.Argument(help="Output folder.")],
        source: Annotated[str, typer.Option(help="Source instrument (name, code or GM number).")] = "flute",
        target: Annotated[str, typer.Option(help="Target instrument.")] = "clarinet",
        sr: Annotated[int, typer.Option(help="Sample rate in Hz.")] = 22050,
        pitches: Annotated[str, typer.Option(help="MIDI range (default: all both can play).")] = "",
        velocity: Annotated[int, typer.Option(help="Note velocity.")] = 110,
        phrases: Annotated[int, typer.Option(help="Random phrases to add to the single notes.")] = 0,
        seed: Annotated[int, typer.Option(help="Seed for phrases.")] = 0,
        workers: Workers = 1, shard: ShardOpt = "0/1", soundfont: SoundFont = None, quiet: Quiet = False,
    ) -> None:
        """The same notes and phrases on two instruments, sample-aligned (timbre-transfer pairs)."""
        from orchestrion.data.build_nsynth import parse_int_list, parse_pitch_range
        from orchestrion.data.build_pairs import PairsBuildConfig, build_pairs

        config = PairsBuildConfig(source=source, target=target, sample_rate=sr,
                                  pitches=parse_pitch_range(pitches) if pitches else None,
                                  velocity=parse_int_list(str(velocity), "--velocity", 1, 127)[0],
                                  phrases=phrases, seed=seed,
                                  soundfont=None if soundfont is None else str(soundfont))
        report = build_pairs(out, config, workers=workers, shard=Shard.parse(shard), progress=not quiet,
                             command=current_command())
        print(_summary(report))

    @data_app.command("midi", short_help="A clean, validated MIDI collection, split by piece.")
    @reports_errors
    def midi(
        out: Annotated[Path, typer.Argument(help="Output folder (<split>/<name>.mid).")],
        source: Annotated[str, typer.Option("--from", help="music21:bach or a folder of MIDI files.")] = "music21:bach",
        limit: Annotated[int | None, typer.Option(help="At most this many pieces.")] = None,
        seed: Annotated[int, typer.Option(help="Seed for the split.")] = 0,
        workers: Workers = 1, shard: ShardOpt = "0/1", quiet: Quiet = False,
    ) -> None:
        """A clean MIDI collection (validated, drums and empty files dropped), split by piece."""
        from orchestrion.data.build_midi import build_midi

        report = build_midi(out, source=source, limit=limit, workers=workers, shard=shard, seed=seed,
                            progress=not quiet)
        print(_summary(report))

    @data_app.command("judge", short_help="Parts rendered alone by several instruments, for the judge.")
    @reports_errors
    def judge(
        out: Annotated[Path, typer.Argument(help="Output folder (<split>/<piece>.npz).")],
        scores: Annotated[str, typer.Option(help="music21:bach or a folder of MIDI files.")] = "music21:bach",
        limit: Annotated[int | None, typer.Option(help="At most this many pieces.")] = None,
        seed: Annotated[int, typer.Option(help="Seed for the slots and the split (as data urmp).")] = 0,
        train_slots: Annotated[int, typer.Option(help="Slots playing each part of a train piece.")] = 5,
        held_out_slots: Annotated[int, typer.Option(help="Slots playing each part of a valid/test piece.")] = 4,
        soundfont: SoundFont = None, quiet: Quiet = False,
    ) -> None:
        """The instrument judge's material: every part rendered alone by several of the 16 slots, 16 kHz."""
        from orchestrion.metrics.judge_data import JudgeDataConfig, build_judge_data

        config = JudgeDataConfig(scores=scores, limit=limit, seed=seed, train_slots_per_part=train_slots,
                                 held_out_slots_per_part=held_out_slots,
                                 soundfont=None if soundfont is None else str(soundfont))
        manifest = build_judge_data(out, config, progress=not quiet)
        pieces = ", ".join(f"{k} {v}" for k, v in manifest["pieces"].items())
        print(f"{out}: {pieces} pieces, {manifest['skipped']} skipped")

    app.add_typer(data_app, name="data")


def _resolve(text: str):
    from orchestrion.data.instrument_choice import resolve_instruments

    return resolve_instruments(_split_names(text)) if text.strip() else []
