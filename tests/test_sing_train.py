"""The `note` system end to end on a tiny NSynth build: Lightning stages, resume, export,
inference, the CLI forms and evaluation. A tiny SING (16 channels, LSTM 1 x 16) keeps it fast."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader, Subset
from typer.testing import CliRunner

from orchestrion.checkpoints import CheckpointError, read_training_checkpoint, save_checkpoint
from orchestrion.cli import app
from orchestrion.data.build_nsynth import NSynthBuildConfig, build_nsynth
from orchestrion.data.nsynth import NSynthDataset
from orchestrion.errors import ConfigError, DatasetError
from orchestrion.systems.sing.commands import parse_overrides
from orchestrion.systems.sing.data import (
    InstrumentEntry,
    InstrumentTable,
    SingNotes,
    describe_data,
    list_notes,
    pair_split,
    resolve_instrument_filter,
)
from orchestrion.systems.sing.evaluate import evaluate_note, estimate_f0, pitch_error_cents
from orchestrion.systems.sing.infer import (
    NoteModel,
    NoteRangeWarning,
    NoteRequest,
    generate_notes,
    read_note_list,
)
from orchestrion.systems.sing.module import SingModule
from orchestrion.systems.sing.presets import get_preset
from orchestrion.systems.sing.train import _last_logged, train_note

runner = CliRunner()
TINY = dict(channels=16, latent_dim=8, lstm_layers=1, lstm_hidden=16, batch_size=4,
            lstm_truncation_steps=64, learning_rate=3e-3,
            autoencoder_epochs=1, sequence_epochs=1, finetune_epochs=1, autoencoder_warmup_batches=0,
            autoencoder_loss="spectral", finetune_loss="spectral", conv_init="default",
            harmonic_partials=0, conv_synthesis=True)
"""SING's 64,000-sample geometry with narrow layers: a step takes ~0.1 s on 2 cores. SING's
decoder, spectral losses and init (with the cpu preset's Kaiming init and quiet decoder,
the log-spectral loss, whose gradient vanishes at silence, barely moves in 16 batches)."""
TINY_HARMONIC = {**TINY, "harmonic_partials": 8, "conv_synthesis": False, "conv_init": "kaiming", "learning_rate": 1e-2}
"""TINY with the cpu preset's decoder output: harmonics of the pitch instead of SING's conv."""


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """Violin 57-64 and flute 60-64 (its range) x 2 velocities; 58 held out to valid, 63 to test."""
    out = tmp_path_factory.mktemp("nsynth_tiny")
    config = NSynthBuildConfig(instruments=("flute", "violin"), pitches=(57, 64),
                               velocities=(75, 127), heldout_pitches=(58, 63))
    build_nsynth(out, config, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def trained_run(tiny_data, tmp_path_factory) -> Path:
    """A run folder whose three stages each trained 2 batches, exported to run/model."""
    out = tmp_path_factory.mktemp("sing_run")
    train_note(tiny_data, out, overrides=TINY, max_steps_per_stage=2, evaluate_notes=0,
               progress=False, command="pytest")
    return out


@pytest.fixture(scope="module")
def model_dir(trained_run) -> Path:
    return trained_run / "model"


def collate_notes(dataset: SingNotes, count: int) -> dict:
    return next(iter(DataLoader(Subset(dataset, range(count)), batch_size=count)))


# --------------------------------------------------------------------------- data


def test_orchestrion_build_is_split_by_its_folders_and_named_by_vocabulary(tiny_data):
    source = describe_data(tiny_data)
    assert (source.kind, source.split_mode) == ("orchestrion", "folders")
    train = list_notes(source, "train")
    table = InstrumentTable.from_records(train, source)
    assert table.names == ("violin", "flute")  # model ids in order of GM program (40, 73)
    assert [e.model_id for e in table] == [0, 1]
    assert table.lookup("fl").name == "flute" and table.lookup("string_acoustic_040").name == "violin"
    assert 63 not in table.all_train_pitches() and 58 not in table.all_train_pitches()
    assert table.train_velocities == (75, 127)
    with pytest.raises(ConfigError, match="knows: violin, flute"):
        table.lookup("tuba")
    assert resolve_instrument_filter(["flute", "gm040", "7", "keyboard_acoustic_007"], source) == [
        73, 40, 7, "keyboard_acoustic_007"]


def test_other_nsynth_data_is_resplit_by_instrument_and_pitch(tiny_data, tmp_path):
    copy = tmp_path / "plain"
    shutil.copytree(tiny_data, copy, ignore=shutil.ignore_patterns("manifest.json", ".build"))
    source = describe_data(copy)
    assert (source.kind, source.split_mode) == ("nsynth", "pairs")
    splits = {name: list_notes(source, name) for name in ("train", "valid", "test")}
    every_note = {r.note_str for r in NSynthDataset(copy).records}
    assert sorted(r.note_str for records in splits.values() for r in records) == sorted(every_note)
    pairs = {name: {(r.instrument_str, r.pitch) for r in records} for name, records in splits.items()}
    assert not pairs["train"] & (pairs["valid"] | pairs["test"])  # velocities of a pair stay together
    for name, records in splits.items():
        assert all(pair_split(r.instrument_str, r.pitch) == name for r in records)
    table = InstrumentTable.from_records(splits["train"], source)
    assert set(table.names) == {"flute_acoustic_073", "string_acoustic_040"}
    with pytest.raises(ConfigError, match="instrument_str"):
        resolve_instrument_filter(["flute"], source)


# --------------------------------------------------------------------------- stages


@pytest.mark.parametrize("stage,sizes", [
    ("autoencoder", TINY), ("sequence", TINY), ("finetune", TINY),
    ("autoencoder", TINY_HARMONIC), ("finetune", TINY_HARMONIC),
], ids=["autoencoder", "sequence", "finetune", "harmonic-autoencoder", "harmonic-finetune"])
def test_each_stage_lowers_its_loss_on_a_training_batch(tiny_data, stage, sizes):
    torch.manual_seed(0)
    source = describe_data(tiny_data)
    records = list_notes(source, "train")
    table = InstrumentTable.from_records(records, source)
    config = get_preset("cpu", **{**sizes, "n_instruments": len(table)})
    module = SingModule(config, stage)
    batch = collate_notes(SingNotes(records, table, config.n_samples), 4)
    with torch.no_grad():
        before = module.stage_loss(batch).item()
    steps = 16 if config.harmonic_partials else 8  # a fresh harmonic output starts near silence
    loader = DataLoader([batch], batch_size=None)  # the same batch every epoch
    trainer = L.Trainer(max_epochs=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, loader)
    assert trainer.global_step == steps * module.optimizer_steps_per_batch
    with torch.no_grad():
        after = module.stage_loss(batch).item()
    assert math.isfinite(after) and after < 0.9 * before, (before, after)


def _autoencoder_after(tiny_data, warmup: int, steps: int) -> tuple[SingModule, dict, float, float]:
    """Train stage 1 for `steps` batches on one batch; (module, metrics, MSE before, after)."""
    torch.manual_seed(0)
    source = describe_data(tiny_data)
    records = list_notes(source, "train")
    table = InstrumentTable.from_records(records, source)
    config = get_preset("cpu", **{**TINY, "n_instruments": len(table), "autoencoder_warmup_batches": warmup})
    module = SingModule(config, "autoencoder")
    batch = collate_notes(SingNotes(records, table, config.n_samples), 4)

    def waveform_mse() -> float:
        with torch.no_grad():
            output, target = module.stage_output(batch)
            return torch.nn.functional.mse_loss(output, target).item()

    before = waveform_mse()
    trainer = L.Trainer(max_epochs=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, DataLoader([batch], batch_size=None))
    return module, dict(trainer.callback_metrics), before, waveform_mse()


def test_autoencoder_warmup_trains_waveform_mse_then_hands_over(tiny_data):
    steps = 20
    warm, metrics, before, after_warmup = _autoencoder_after(tiny_data, warmup=steps, steps=steps)
    _, _, _, after_spectral = _autoencoder_after(tiny_data, warmup=0, steps=steps)
    assert "train/warmup_mse" in metrics
    assert after_warmup < 0.95 * before and after_warmup < after_spectral, (before, after_warmup, after_spectral)
    assert not warm.in_warmup  # global_step reached the warm-up length: the spectral loss is next
    assert not SingModule(get_preset("paper", n_instruments=2), "autoencoder").in_warmup  # SING: none


@pytest.mark.parametrize("stage", ["autoencoder", "finetune"])
def test_stage_loss_follows_the_configured_loss(tiny_data, stage):
    source = describe_data(tiny_data)
    records = list_notes(source, "train")
    table = InstrumentTable.from_records(records, source)
    batch = collate_notes(SingNotes(records, table, 64_000), 2)
    losses = {}
    for name in ("spectral", "waveform_mse"):
        torch.manual_seed(0)
        config = get_preset("cpu", **{**TINY, "n_instruments": len(table), f"{stage}_loss": name})
        module = SingModule(config, stage)
        with torch.no_grad():
            output, target = module.stage_output(batch)
            losses[name] = module.stage_loss(batch).item()
            expected = (torch.nn.functional.mse_loss(output, target) if name == "waveform_mse"
                        else module.spectral_loss(output, target)).item()
        assert losses[name] == pytest.approx(expected, rel=1e-5)
    assert losses["spectral"] != pytest.approx(losses["waveform_mse"], rel=1e-2)


def test_level_weight_adds_the_frame_level_term_to_the_spectral_loss(tiny_data):
    source = describe_data(tiny_data)
    records = list_notes(source, "train")
    table = InstrumentTable.from_records(records, source)
    batch = collate_notes(SingNotes(records, table, 64_000), 2)
    torch.manual_seed(0)
    module = SingModule(get_preset("cpu", **{**TINY, "n_instruments": len(table),
                                             "level_weight": 0.5}), "finetune")
    with torch.no_grad():
        output, target = module.stage_output(batch)
        expected = module.spectral_loss(output, target) + 0.5 * module.level_loss(output, target)
        assert float(module.stage_loss(batch)) == pytest.approx(float(expected), rel=1e-5)
        assert float(module.level_loss(output, target)) > 0
    with pytest.raises(ConfigError, match="level_weight"):
        get_preset("cpu", level_weight=-1.0)


def test_gm_named_instruments_are_found_by_general_midi_number_or_name():
    table = InstrumentTable((
        InstrumentEntry("gm006", 0, 6, "keyboard_acoustic_006", (60, 62)),
        InstrumentEntry("flute", 1, 73, "flute_acoustic_073", (72,)),
    ))
    assert table.lookup("harpsichord").name == "gm006"
    assert table.lookup("  HARPSICHORD ").name == "gm006" and table.lookup("6").name == "gm006"
    assert table.lookup("73").name == "flute"  # the GM number of a vocabulary instrument
    for unknown in ("marimba", "12", "200", "kazoo"):  # known to GM, but not to this model
        with pytest.raises(ConfigError, match="knows: harpsichord, flute"):
            table.lookup(unknown)


def test_stage_trains_only_its_own_weights(tiny_data):
    config = get_preset("cpu", **{**TINY, "n_instruments": 2})
    module = SingModule(config, "sequence")
    trained = {n for n, p in module.model.named_parameters() if p.requires_grad}
    assert trained and all(name.startswith("generator.") for name in trained)
    assert module.optimizer_steps_per_batch == math.ceil(module.model.geometry.n_steps / 64)


def test_run_writes_stages_export_and_card(trained_run):
    for stage in ("autoencoder", "sequence", "finetune"):
        assert (trained_run / "stages" / stage / "final" / "model.safetensors").is_file()
        assert (trained_run / "stages" / stage / "checkpoints" / "last.ckpt").is_file()
    document = json.loads((trained_run / "model" / "config.json").read_text())
    assert document["system"] == "note"
    config = document["config"]
    assert config["sing"]["n_instruments"] == 2
    assert [e["name"] for e in config["instruments"]] == ["violin", "flute"]
    flute = config["instruments"][1]
    assert flute["train_pitches"] == sorted(flute["train_pitches"]) and 63 not in flute["train_pitches"]
    assert [s["steps"] for s in config["training"]["stages"]] == [2, 2, 2]
    card = (trained_run / "model" / "MODEL_CARD.md").read_text()
    assert "`pytest`" in card and "| flute | flute_acoustic_073 |" in card and "held-out" in card


def test_resume_continues_an_unfinished_stage_and_skips_finished_ones(tiny_data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    original_step = SingModule.training_step

    def crash_after_three_batches(self, batch, batch_idx):
        if self.trainer.global_step >= 3:
            raise RuntimeError("power cut")
        return original_step(self, batch, batch_idx)

    monkeypatch.setattr(SingModule, "training_step", crash_after_three_batches)
    with pytest.raises(RuntimeError, match="power cut"):  # one epoch = 5 batches of 4 notes
        train_note(tiny_data, out, overrides=TINY, stages=["autoencoder"], evaluate_notes=0,
                   progress=False)
    monkeypatch.setattr(SingModule, "training_step", original_step)
    assert (out / "stages" / "autoencoder" / "checkpoints" / "last.ckpt").is_file()
    assert not (out / "stages" / "autoencoder" / "final").exists()
    with pytest.raises(ConfigError, match="--resume"):
        train_note(tiny_data, out, overrides=TINY, stages=["autoencoder"], progress=False)
    with pytest.raises(ConfigError, match="part-way"):  # a loss may not change mid-stage
        train_note(tiny_data, out, overrides={"loss_eps": 0.01}, stages=["autoencoder"],
                   evaluate_notes=0, resume=True, progress=False)
    rates = []
    original_start = SingModule.on_train_start

    def record_rate(self):
        original_start(self)
        rates.append(self.trainer.optimizers[0].param_groups[0]["lr"])

    monkeypatch.setattr(SingModule, "on_train_start", record_rate)
    resumed_state = read_training_checkpoint(out / "stages" / "autoencoder" / "checkpoints" / "last.ckpt")[
        "optimizer_states"][0]
    assert resumed_state["param_groups"][0]["lr"] != 1e-4  # the run's own rate
    # the learning rate may change mid-stage: the resumed optimiser takes the new one
    report = train_note(tiny_data, out, overrides={"learning_rate": 1e-4}, stages=["autoencoder"],
                        evaluate_notes=0, resume=True, progress=False)
    assert rates == [1e-4]
    assert [(r.stage, r.steps, r.skipped) for r in report.stages] == [("autoencoder", 5, False)]
    report = train_note(tiny_data, out, stages=["autoencoder", "sequence"], max_steps_per_stage=1,
                        evaluate_notes=0, resume=True, progress=False)
    assert [(r.stage, r.steps, r.skipped) for r in report.stages] == [
        ("autoencoder", 5, True), ("sequence", 1, False)]
    with pytest.raises(ConfigError, match="channels"):
        train_note(tiny_data, out, overrides={**TINY, "channels": 32}, resume=True, progress=False)
    # training settings may change for a stage not yet started; the card keeps both
    report = train_note(tiny_data, out, stages=["finetune"], max_steps_per_stage=1,
                        overrides={"loss_eps": 0.01, "pitch_shift_semitones": 0.4},
                        evaluate_notes=0, resume=True, progress=False, command="third command")
    finetune = report.stages[-1]
    assert (finetune.stage, finetune.steps) == ("finetune", 1)
    assert finetune.settings["loss_eps"] == 0.01 and finetune.settings["pitch_shift_semitones"] == 0.4
    card = (out / "model" / "MODEL_CARD.md").read_text()
    assert "- finetune: `third command`" in card
    assert "- autoencoder: `(not recorded)`, with loss_eps = 1.0, with pitch_shift_semitones = 0.0" in card


def test_detuned_notes_carry_their_fractional_pitch(tiny_data):
    source = describe_data(tiny_data)
    records = list_notes(source, "train")
    table = InstrumentTable.from_records(records, source)
    torch.manual_seed(0)
    notes = SingNotes(records, table, 64_000, pitch_shift=0.4)
    plain = SingNotes(records, table, 64_000)
    index = next(i for i, r in enumerate(notes.records) if r.velocity == 127)
    shifts = []
    for _ in range(3):
        item = notes[index]
        shift = item["pitch"] - notes.records[index].pitch
        assert isinstance(item["pitch"], float) and abs(shift) <= 0.4
        assert item["audio"].shape == (64_000,)
        cents = pitch_error_cents(estimate_f0(item["audio"].numpy(), 16_000, round(item["pitch"])),
                                  round(item["pitch"]))
        assert abs(cents - 100 * (item["pitch"] - round(item["pitch"]))) < 15, (cents, item["pitch"])
        shifts.append(shift)
    assert len(set(shifts)) == 3  # a new shift every time the note is read
    assert isinstance(plain[index]["pitch"], int)
    with pytest.raises(ConfigError, match="pitch_shift"):
        SingNotes(records, table, 64_000, pitch_shift=-0.1)


def test_resume_without_a_run_is_an_error(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="nothing to resume"):
        train_note(tiny_data, tmp_path / "empty", overrides=TINY, resume=True, progress=False)


# --------------------------------------------------------------------------- inference


def test_export_loads_and_generates_finite_64000_sample_notes(model_dir):
    model = NoteModel.from_pretrained(model_dir)
    assert model.table.names == ("violin", "flute") and model.sample_rate == 16_000
    waves = generate_notes(model, [("flute", 62, 127), ("violin", 60, 75), ("Violin", 61, 75)],
                           batch_size=2)
    assert waves.shape == (3, 64_000) and waves.dtype == np.float32
    assert np.isfinite(waves).all()


def test_a_model_without_its_encoder_generates_the_same_notes(model_dir, tmp_path):
    """Shipped models leave out stage 1's encoder; a missing decoder weight is still an error."""
    from orchestrion.checkpoints import load_checkpoint

    full = load_checkpoint(model_dir, "note")
    lean = {k: v for k, v in full.state_dict.items() if not k.startswith("encoder.")}
    assert len(lean) < len(full.state_dict)
    folder = save_checkpoint(tmp_path / "lean", "note", full.config, lean, full.card, half=True)
    requests = [("flute", 62, 127), ("violin", 60, 75)]
    torch.manual_seed(0)
    expected = generate_notes(NoteModel.from_pretrained(model_dir), requests)
    got = generate_notes(NoteModel.from_pretrained(folder), requests)
    assert np.abs(got - expected).max() < 1e-2 * max(np.abs(expected).max(), 1e-6)
    broken = {k: v for k, v in lean.items() if not k.startswith("decoder.")}
    save_checkpoint(tmp_path / "broken", "note", full.config, broken, full.card)
    with pytest.raises(CheckpointError, match="do not fit"):
        NoteModel.from_pretrained(tmp_path / "broken")


def test_generate_notes_checks_every_request_first(model_dir):
    model = NoteModel.from_pretrained(model_dir)
    with pytest.raises(ConfigError, match="no instrument 'kazoo'; it knows: violin, flute"):
        generate_notes(model, [("flute", 60, 75), ("kazoo", 60, 75)])
    with pytest.raises(ConfigError, match="pitch 200 is outside the MIDI range 0-127"):
        generate_notes(model, [("flute", 200, 75)])
    with pytest.raises(ConfigError, match="velocity 0 is outside the MIDI range 1-127"):
        generate_notes(model, [("flute", 60, 0)])
    with pytest.warns(NoteRangeWarning, match="outside its trained range 60-64"):
        waves = generate_notes(model, [NoteRequest("flute", 40, 127)])
    assert np.isfinite(waves).all()
    assert model.config.pitch_encoding == "continuous"
    with pytest.warns(NoteRangeWarning, match="never in the training data of any instrument "
                                              r"\(the model must interpolate"):
        generate_notes(model, [("flute", 63, 127)])


def test_from_pretrained_refuses_other_systems_and_missing_models(tmp_path):
    other = save_checkpoint(tmp_path / "render_model", "render", {}, {"w": torch.zeros(1)}, "")
    with pytest.raises(CheckpointError, match="not a `note` model"):
        NoteModel.from_pretrained(other)
    with pytest.raises(CheckpointError):
        NoteModel.from_pretrained(tmp_path / "nowhere")


def test_read_note_list_accepts_spaces_and_comments(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("# instrument pitch velocity\ndouble bass 40 100\n\nflute 67 90  # G4\n")
    assert read_note_list(path) == [NoteRequest("double bass", 40, 100), NoteRequest("flute", 67, 90)]
    path.write_text("flute 67\n")
    with pytest.raises(DatasetError, match=r"notes.txt:1: expected"):
        read_note_list(path)


# --------------------------------------------------------------------------- CLI


def run(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_failure(result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    text = result.output.strip()
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    for needle in needles:
        assert needle in text, text


def test_cli_single_note_writes_a_4_second_wav(model_dir, tmp_path):
    out = tmp_path / "g4.wav"
    result = run("note", "--instrument", "flute", "--pitch", 62, "--velocity", 127, "-o", out,
                 "--model", model_dir)
    assert result.exit_code == 0, result.output
    wave, rate = sf.read(out)
    assert rate == 16_000 and wave.shape == (64_000,) and np.isfinite(wave).all()


def test_cli_batch_writes_nsynth_named_files(model_dir, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("flute 62 127\nviolin 60 75\nfl 61 127\n")
    out = tmp_path / "out"
    result = run("note", "--list", notes, "-o", out, "--model", model_dir)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "flute-061-127.wav", "flute-062-127.wav", "violin-060-075.wav"]


def test_cli_lists_instruments_with_trained_ranges(model_dir):
    result = run("note", "--list-instruments", "--model", model_dir)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["violin 57-64", "flute 60-64"]


@pytest.mark.parametrize(("args", "needle"), [
    (["--instrument", "kazoo", "--pitch", 60], "no instrument 'kazoo'; it knows: violin, flute"),
    (["--instrument", "flute", "--pitch", 200], "pitch 200 is outside the MIDI range 0-127"),
    (["--instrument", "flute"], "needs both --instrument and --pitch"),
])
def test_cli_bad_requests_fail_in_one_line_without_output(model_dir, tmp_path, args, needle):
    out = tmp_path / "bad.wav"
    assert_one_line_failure(run("note", *args, "-o", out, "--model", model_dir), needle)
    assert not out.exists()


def test_cli_bad_list_line_writes_nothing(model_dir, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("flute 62 127\nkazoo 60 75\n")
    out = tmp_path / "out"
    assert_one_line_failure(run("note", "--list", notes, "-o", out, "--model", model_dir), "kazoo")
    assert not out.exists()


def test_cli_refuses_a_checkpoint_of_another_system(tmp_path):
    other = save_checkpoint(tmp_path / "render_model", "render", {}, {"w": torch.zeros(1)}, "")
    out = tmp_path / "x.wav"
    assert_one_line_failure(run("note", "--instrument", "flute", "--pitch", 60, "-o", out,
                                "--model", other), "not a `note` model")
    assert not out.exists()


def test_cli_default_model_missing_is_one_clear_line(tmp_path, monkeypatch):
    import orchestrion.checkpoints
    import orchestrion.systems.sing.infer

    monkeypatch.chdir(tmp_path)
    for module in (orchestrion.checkpoints, orchestrion.systems.sing.infer):  # an install without it
        monkeypatch.setattr(module, "ASSETS_DIR", tmp_path / "no_models")
    result = run("note", "--instrument", "flute", "--pitch", 60, "-o", tmp_path / "x.wav")
    assert_one_line_failure(result, "note-cpu", "not shipped")
    assert not (tmp_path / "x.wav").exists()


def test_parse_overrides_types_each_field():
    assert parse_overrides(["activation=elu", "channels=64", "elu_alpha=1.5", "squared_window=no"]) == {
        "activation": "elu", "channels": 64, "elu_alpha": 1.5, "squared_window": False}
    with pytest.raises(ConfigError, match="no such field"):
        parse_overrides(["chanels=3"])
    with pytest.raises(ConfigError, match="expected a int"):
        parse_overrides(["channels=wide"])


@pytest.mark.slow
def test_cli_train_and_evaluate_groups(tiny_data, tmp_path):
    """`orchestrion train note` and `orchestrion evaluate note`, the real commands."""
    out = tmp_path / "run"
    sets = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]
    result = runner.invoke(app, ["train", "note", "--data", str(tiny_data), "--out", str(out),
                                  "--max-steps-per-stage", "1", "--evaluate-notes", "2", "-q", *sets])
    assert result.exit_code == 0, result.output
    assert "exported" in result.output and (out / "model" / "model.safetensors").is_file()
    result = runner.invoke(app, ["evaluate", "note", "--model", str(out / "model"), "--data",
                                  str(tiny_data), "--limit", "2", "-q", "--json", str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    assert "pitch unseen for its instrument" in result.output
    assert json.loads((tmp_path / "e.json").read_text())["overall"]["notes"] == 2


# --------------------------------------------------------------------------- evaluation


def test_evaluate_gives_finite_figures_with_the_unseen_pitch_split(model_dir, tiny_data):
    result = evaluate_note(model_dir, tiny_data, split="test", limit=4)
    assert result.overall.notes == 4
    assert result.unseen_for_instrument.notes == 4  # test pairs are never trained pairs
    assert result.unseen_for_all.notes == 4  # pitch 63 (D#4) is held out of every instrument
    for group in (result.overall, result.unseen_for_instrument):
        for value in (group.spectral_loss, group.waveform_l1, group.pitch_accuracy,
                      group.reference_pitch_accuracy):
            assert math.isfinite(value)
    assert result.overall.reference_pitch_accuracy >= 0.75  # pyin reads FluidSynth's notes
    assert 0.0 <= result.overall.unvoiced <= 1.0 and math.isfinite(result.overall.level_db)
    text = result.format()
    assert "pitch unseen for every instrument" in text and "50 cents" in text
    assert f"{result.overall.level_db:+.1f} dB" in text
    on_train = evaluate_note(model_dir, tiny_data, split="train", limit=2, reference=False)
    assert on_train.unseen_for_instrument.notes == 0 and "-" in on_train.format()


def test_level_compares_rms_in_db():
    from orchestrion.systems.sing.evaluate import _level_db

    note = torch.sin(torch.linspace(0, 100, 16_000))
    assert _level_db(0.5 * note, note) == pytest.approx(-6.0206, abs=1e-3)
    assert _level_db(note, note) == pytest.approx(0.0, abs=1e-9)
    assert _level_db(torch.zeros(16_000), note) < -100  # silence: floored, finite


def test_readable_accuracy_leaves_out_notes_pyin_misreads_in_the_recording():
    from orchestrion.systems.sing.evaluate import GroupFigures

    hits, reference = np.array([1.0, 0.0, 1.0, 0.0, 1.0]), np.array([1.0, 1.0, 0.0, 0.0, 1.0])
    zeros = np.zeros(5)
    everything = GroupFigures.of(zeros, zeros, hits, reference, np.ones(5, dtype=bool))
    assert everything.pitch_accuracy == pytest.approx(0.6)
    assert everything.readable_pitch_accuracy == pytest.approx(2 / 3)  # notes 0, 1, 4
    unread = GroupFigures.of(zeros, zeros, hits, reference, np.array([0, 0, 1, 1, 0], dtype=bool))
    assert math.isnan(unread.readable_pitch_accuracy)
    assert math.isnan(GroupFigures.of(zeros, zeros, hits, None, np.ones(5, dtype=bool)).readable_pitch_accuracy)


def test_pitch_measure_hits_a_clean_tone_and_misses_an_octave():
    rate = 16_000
    time = np.arange(64_000) / rate
    tone = (0.3 * np.sin(2 * np.pi * 392.0 * time)).astype(np.float32)  # G4 = MIDI 67
    f0 = estimate_f0(tone, rate, 67)
    assert abs(pitch_error_cents(f0, 67)) < 10
    assert abs(pitch_error_cents(f0, 55)) > 1000
    assert math.isnan(estimate_f0(np.zeros(64_000, dtype=np.float32), rate, 67))


def test_pitch_measure_reads_the_lowest_notes_without_a_pyin_warning():
    rate = 16_000
    tone = (0.3 * np.sin(2 * np.pi * 41.2034 * np.arange(64_000) / rate)).astype(np.float32)  # E1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # librosa's "less than two periods of fmin" would raise
        f0 = estimate_f0(tone, rate, 28)  # the search floor is two octaves down: clamped
    assert abs(pitch_error_cents(f0, 28)) < 50


def test_timed_checkpoints_are_written_while_a_stage_trains(tiny_data, tmp_path, monkeypatch):
    from orchestrion.timed_checkpoint import TimedCheckpoint

    saves = []
    original = TimedCheckpoint.save

    def counting_save(self, trainer):
        original(self, trainer)
        saves.append((trainer.global_step, self.path.is_file()))

    monkeypatch.setattr(TimedCheckpoint, "save", counting_save)
    train_note(tiny_data, tmp_path, overrides=TINY, stages=["autoencoder"], max_steps_per_stage=3,
               checkpoint_minutes=1e-6, evaluate_notes=0, progress=False)
    # one save per batch (the period is ~0) plus the end of training, each leaving last.ckpt
    assert [step for step, _ in saves][:3] == [1, 2, 3] and all(exists for _, exists in saves)
    last = read_training_checkpoint(tmp_path / "stages" / "autoencoder" / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 3


def test_a_stage_resumed_at_its_end_reports_the_logged_train_loss(tmp_path):
    for version, rows in ((0, "1.5,\n,0.9\n0.7,\n"), (2, "0.3,\n,0.2\n"), (10, ",0.1\n0.25,\n")):
        folder = tmp_path / "logs" / f"version_{version}"
        folder.mkdir(parents=True)
        (folder / "metrics.csv").write_text("train/loss,val/loss\n" + rows)
    assert _last_logged(tmp_path, "train/loss") == 0.25  # version_10 after version_2
    assert _last_logged(tmp_path, "val/loss") == 0.1
    assert math.isnan(_last_logged(tmp_path, "train/other"))
    assert math.isnan(_last_logged(tmp_path / "missing", "train/loss"))


def test_init_from_starts_a_new_run_from_a_model_with_a_fresh_harmonic_branch(tiny_data, model_dir, tmp_path):
    out = tmp_path / "grown"
    train_note(tiny_data, out, overrides={**TINY, "harmonic_partials": 4}, stages=["finetune"],
               init_from=model_dir, max_steps_per_stage=0, evaluate_notes=0, progress=False,
               command="pytest grow")
    start = load_file(str(model_dir / "model.safetensors"))
    grown = load_file(str(out / "model" / "model.safetensors"))
    fresh = sorted(k for k in grown if k not in start)
    assert fresh and all(k.startswith("decoder.harmonic.") for k in fresh)
    assert all(torch.equal(grown[k], start[k]) for k in start)
    card = (out / "model" / "MODEL_CARD.md").read_text()
    assert f"- started from: `{model_dir}`; harmonic_partials = 4, its weights fresh" in card
    stored = json.loads((out / "run.json").read_text())
    assert stored["started_from"].startswith(f"`{model_dir}`")


def test_init_from_refuses_another_shape_or_system(tiny_data, model_dir, tmp_path):
    with pytest.raises(ConfigError, match="differs from this run's in channels"):
        train_note(tiny_data, tmp_path / "wide", overrides={**TINY, "channels": 24},
                   stages=["finetune"], init_from=model_dir, max_steps_per_stage=0,
                   evaluate_notes=0, progress=False)
    other = save_checkpoint(tmp_path / "render", "render", {}, {"w": torch.zeros(1)}, "# render")
    with pytest.raises(CheckpointError, match="not a `note` model"):
        train_note(tiny_data, tmp_path / "other", overrides=TINY, init_from=other,
                   max_steps_per_stage=0, evaluate_notes=0, progress=False)
