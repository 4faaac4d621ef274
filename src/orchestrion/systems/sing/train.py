"""`orchestrion train note`: SING's three stages on NSynth-format data, then a shippable export.

Folder layout of a run (``out_dir``)::

    run.json                          config, instrument table, data, filter (fixed at the start)
    stages/<stage>/checkpoints/*.ckpt Lightning checkpoints (every `checkpoint_minutes`, and
                                      on an exception or Ctrl-C): what `resume` continues
    stages/<stage>/logs/              CSV logs (train/loss, val/loss, val/waveform_l1)
    stages/<stage>/final/             the stage's weights once it is done (safetensors +
                                      config + card): a finished stage is skipped on resume
    model/                            the export: safetensors + config.json + MODEL_CARD.md

Stages run in SING's order (autoencoder, sequence, finetune). Each starts from the weights of
the latest earlier stage that has finished in this folder, so ``--stages finetune`` after a
finished sequence stage fine-tunes it, and on a fresh folder trains end to end from scratch.
A stage stops at its epochs (`SingConfig.*_epochs`), at `max_epochs_per_stage`,
`max_steps_per_stage` batches or `max_minutes_per_stage`, whichever comes first.

A stage stopped part-way through an epoch (crash, Ctrl-C) resumes at the same batch count,
but the rest of that epoch is drawn from a fresh shuffle (the loader keeps no position).
Each fresh stage is validated once before training, so the card shows where its held-out
loss started.

A continued run keeps the model's shape from ``run.json``. Its epochs may change at any
time, and its training settings (`TRAINING_FIELDS`: losses, learning rate, batch size, pitch
shift) for stages it has not started yet, e.g. a stage 3 under another loss after stages 1-2;
the learning rate may also change under a stage part-way through (`MID_STAGE_FIELDS`).
Each stage records the command and settings it trained with, and the card lists them when
they differ.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only
from rich.console import Console
from torch.utils.data import DataLoader, Subset

from orchestrion.checkpoints import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    load_state_into,
    read_training_checkpoint,
    save_checkpoint,
)
from orchestrion.data.records import NoteRecord
from orchestrion.errors import ConfigError, DatasetError
from orchestrion.files import atomic_output
from orchestrion.systems.sing.data import (
    DataSource,
    InstrumentTable,
    SingNotes,
    check_filter_matched,
    describe_data,
    list_notes,
    resolve_instrument_filter,
    spread_subset,
)
from orchestrion.systems.sing.model import GENERATION_UNUSED, STAGES, Sing
from orchestrion.systems.sing.module import SingModule
from orchestrion.systems.sing.presets import SingConfig, config_of, config_parts, get_preset
from orchestrion.training import DEFAULT_CHECKPOINT_MINUTES, build_trainer, interruption_reported, quiet_lightning

SYSTEM = "note"
RUN_FILE = "run.json"
STAGES_DIR = "stages"
FINAL_DIR = "final"
EXPORT_DIR = "model"
SCHEDULE_FIELDS = ("autoencoder_epochs", "sequence_epochs", "finetune_epochs")
"""Config fields a resumed run may change at any time."""
TRAINING_FIELDS = (
    "autoencoder_loss", "finetune_loss", "autoencoder_warmup_batches", "loss_transform",
    "loss_distance", "loss_eps", "loss_n_fft", "loss_hop_length", "level_weight",
    "pitch_shift_semitones",
    "learning_rate", "batch_size",
)
"""Config fields that shape training but not the weights: a resumed run may change them
for stages it has not started (each stage's report keeps the values it trained with).
Every other field is fixed by ``run.json``."""
FRESH_PART_FIELDS = {"harmonic_partials": ("decoder.harmonic.",)}
"""Architecture fields in which a model given to ``init_from`` may differ from the new run's,
and the weights they size: those start fresh, every other weight is loaded."""
MID_STAGE_FIELDS = ("learning_rate",)
"""Training settings a stage part-way through may change too: the resumed optimiser keeps
its moments and takes the new step size (a hand-made learning-rate decay)."""
STAGE_EPOCH_FIELD = dict(zip(STAGES, SCHEDULE_FIELDS))
console = Console(stderr=True)


# --------------------------------------------------------------------------- reports


@dataclass
class StageReport:
    """One stage of a run.

    Attributes
    ----------
    stage : "autoencoder", "sequence" or "finetune".
    steps : training batches (stage 2 makes one Adam step per TBPTT chunk of each batch).
    minutes : training wall time, summed over resumed runs.
    train_loss : the last logged training loss (NaN if none).
    val_loss : the stage's loss on the held-out validation notes after the stage.
    val_waveform_l1 : mean |output - target| on those notes (stages 1 and 3; NaN for 2).
    skipped : True if the stage was already finished in this folder (resume).
    """

    stage: str
    steps: int
    minutes: float
    train_loss: float
    val_loss: float
    val_waveform_l1: float
    initial_val_loss: float = float("nan")
    command: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "skipped"}

    @classmethod
    def from_dict(cls, values: dict[str, Any], skipped: bool = False) -> StageReport:
        return cls(str(values["stage"]), int(values["steps"]), float(values["minutes"]),
                   float(values["train_loss"]), float(values["val_loss"]),
                   float(values["val_waveform_l1"]),
                   float(values.get("initial_val_loss", float("nan"))),
                   str(values.get("command", "")), dict(values.get("settings", {})), skipped)


@dataclass
class NoteTrainReport:
    """What `train_note` wrote and reached."""

    out_dir: Path
    export_dir: Path
    stages: list[StageReport]
    table: InstrumentTable
    train_notes: int
    valid_notes: int
    evaluation: Any = None  # NoteEvaluation, when evaluate_notes > 0
    minutes: float = 0.0

    def format(self) -> str:
        """A short text summary: one line per stage, then the evaluation table."""
        lines = [f"{self.out_dir}: {self.train_notes} training notes, {self.valid_notes} validation "
                 f"notes, {len(self.table)} instruments ({', '.join(self.table.names)})"]
        for report in self.stages:
            state = "already done" if report.skipped else f"{report.minutes:.1f} min"
            start = "" if report.initial_val_loss != report.initial_val_loss else \
                f"{report.initial_val_loss:.4f} -> "
            lines.append(f"  {report.stage:<11} {report.steps:>7} batches  {state:>12}  "
                         f"train {report.train_loss:.4f}  held-out {start}{report.val_loss:.4f}")
        lines.append(f"exported {self.export_dir}")
        if self.evaluation is not None:
            lines.append(self.evaluation.format())
        return "\n".join(lines)


# --------------------------------------------------------------------------- run plan


@dataclass
class RunPlan:
    """Everything fixed at the start of a run (``run.json``)."""

    config: SingConfig
    preset: str
    overrides: dict[str, Any]
    table: InstrumentTable
    source: DataSource
    instrument_filter: list[int | str] | None
    extra: dict[str, Any] = field(default_factory=dict)
    started_from: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**config_parts(self.config), "preset": self.preset, "overrides": self.overrides,
                **self.table.to_dict(), "data": {**self.source.to_dict(),
                                                 "instrument_filter": self.instrument_filter},
                "started_from": self.started_from}


@dataclass
class InitialWeights:
    """A model's weights that a new run starts from (``init_from``) instead of from scratch."""

    checkpoint: Checkpoint
    skip: tuple[str, ...]
    description: str


def _differing_fields(one: SingConfig, other: SingConfig) -> list[str]:
    """Names of the config fields whose values differ between `one` and `other`."""
    return [f.name for f in dataclasses.fields(SingConfig)
            if getattr(one, f.name) != getattr(other, f.name)]


def _initial_weights(init_from: str | Path, start: Checkpoint, plan: RunPlan,
                     stages: Sequence[str]) -> InitialWeights:
    """Check that `start` (loaded from `init_from`) fits the run: same instrument table, same
    config but for training settings and `FRESH_PART_FIELDS` (whose weights start fresh)."""
    try:
        before = config_of(start.config)
        table = InstrumentTable.from_dict(start.config)
    except (KeyError, TypeError, ConfigError) as exc:
        raise ConfigError(f"--init-from {init_from}: not a note model's config ({exc})") from None
    differ = _differing_fields(before, plan.config)
    other = [name for name in differ
             if name not in SCHEDULE_FIELDS + TRAINING_FIELDS + tuple(FRESH_PART_FIELDS)]
    if other:
        raise ConfigError(f"--init-from {init_from}: its config differs from this run's in "
                          f"{', '.join(other)}")
    if table.to_dict() != plan.table.to_dict():
        raise ConfigError(f"--init-from {init_from}: it was trained on other instruments or "
                          "pitches than this run's data gives")
    skip = tuple(prefix for name in differ for prefix in FRESH_PART_FIELDS.get(name, ()))
    if not any(key.startswith(GENERATION_UNUSED) for key in start.state_dict):
        needing = [s for s in stages if s != "finetune"]
        if needing:
            raise ConfigError(f"--init-from {init_from}: it has no encoder weights (a shipped "
                              f"model leaves them out) and stage {needing[0]} needs them; start "
                              "from the run's own model folder")
        skip += GENERATION_UNUSED
    history = start.history()
    fresh = "".join(f"; {name} = {getattr(plan.config, name)}, its weights fresh"
                    for name in differ if name in FRESH_PART_FIELDS)
    description = f"`{start.path}`{fresh}" + (f" ({'; '.join(history)})" if history else "")
    return InitialWeights(start, skip, description)


def _load_run(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the run description ({exc})", path) from None


def _plan_run(
    data_dir: Path,
    out_dir: Path,
    preset: str | None,
    overrides: dict[str, Any],
    instruments: Sequence[str | int] | None,
    split_mode: str,
) -> tuple[RunPlan, list[NoteRecord]]:
    """The run's plan and its training notes: from ``run.json`` if the folder has one."""
    run_path = out_dir / RUN_FILE
    source = describe_data(data_dir, split_mode)
    if run_path.is_file():
        try:
            return _plan_from_run_file(run_path, source, preset, overrides, instruments, split_mode)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{RUN_FILE} is incomplete ({type(exc).__name__}: {exc})",
                              run_path) from None
    preset = preset or "cpu"
    instrument_filter = resolve_instrument_filter(instruments, source)
    records = list_notes(source, "train", instrument_filter)
    check_filter_matched(records, instrument_filter, source)
    table = InstrumentTable.from_records(records, source)
    if "n_instruments" in overrides and overrides["n_instruments"] < len(table):
        raise ConfigError(f"n_instruments = {overrides['n_instruments']} is fewer than the "
                          f"{len(table)} instruments in the training data")
    config = get_preset(preset, **{"n_instruments": len(table), **overrides})
    if config.sample_rate != 16_000:
        raise ConfigError(f"NSynth notes are 16,000 Hz; the config says sample_rate = {config.sample_rate}")
    return RunPlan(config, preset, dict(overrides), table, source, instrument_filter), records


def _plan_from_run_file(
    run_path: Path,
    source: DataSource,
    preset: str | None,
    overrides: dict[str, Any],
    instruments: Sequence[str | int] | None,
    split_mode: str,
) -> tuple[RunPlan, list[NoteRecord]]:
    """The plan stored in ``run.json``; `overrides` may change only the epochs."""
    stored = _load_run(run_path)
    config = config_of(stored)
    if preset is not None and preset != stored["preset"]:
        raise ConfigError(f"this run uses preset {stored['preset']!r}, not {preset!r}", run_path)
    requested = SingConfig.from_dict({**config.to_dict(), **overrides})
    changed = [name for name in _differing_fields(requested, config) if name not in SCHEDULE_FIELDS]
    fixed = [name for name in changed if name not in TRAINING_FIELDS]
    if fixed:
        raise ConfigError(
            f"this run was started with other values of {', '.join(fixed)}; only the "
            f"epochs and the training settings ({', '.join(TRAINING_FIELDS)}) may change "
            "when continuing it", run_path)
    stored_split_mode = stored["data"]["split_mode"]
    if split_mode != "auto" and split_mode != stored_split_mode:
        raise ConfigError(f"this run splits its data by {stored_split_mode!r}", run_path)
    source = dataclasses.replace(source, split_mode=stored_split_mode)
    instrument_filter = stored["data"].get("instrument_filter")
    if instruments is not None and resolve_instrument_filter(instruments, source) != instrument_filter:
        raise ConfigError(f"this run trains on instruments {instrument_filter}", run_path)
    table = InstrumentTable.from_dict(stored)
    plan = RunPlan(requested, stored["preset"], {**stored.get("overrides", {}), **overrides},
                   table, source, instrument_filter, {"changed_training_fields": changed},
                   stored.get("started_from", ""))
    return plan, list_notes(source, "train", instrument_filter)


# --------------------------------------------------------------------------- lightning pieces


class StageClock(Callback):
    """Training wall time of a stage, kept in its checkpoints so resumed runs add up."""

    def __init__(self) -> None:
        self.previous_s = 0.0
        self._started: float | None = None

    @property
    def elapsed_s(self) -> float:
        running = 0.0 if self._started is None else time.monotonic() - self._started
        return self.previous_s + running

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.monotonic()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.previous_s, self._started = self.elapsed_s, None

    def state_dict(self) -> dict[str, float]:
        return {"elapsed_s": self.elapsed_s}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.previous_s = float(state_dict.get("elapsed_s", 0.0))


def _stage_dir(out_dir: Path, stage: str) -> Path:
    return out_dir / STAGES_DIR / stage


def _final_dir(out_dir: Path, stage: str) -> Path:
    return _stage_dir(out_dir, stage) / FINAL_DIR


def _last_ckpt(out_dir: Path, stage: str) -> Path:
    return _stage_dir(out_dir, stage) / "checkpoints" / "last.ckpt"


def _stage_finished(out_dir: Path, stage: str) -> bool:
    return (_final_dir(out_dir, stage) / "config.json").is_file()


def _latest_finished_before(out_dir: Path, stage: str) -> str | None:
    """The latest stage before `stage` (SING's order) with final weights in `out_dir`."""
    earlier = STAGES[: STAGES.index(stage)]
    return next((s for s in reversed(earlier) if _stage_finished(out_dir, s)), None)


def _load_stage_weights(module: SingModule, out_dir: Path, stage: str) -> None:
    checkpoint = load_checkpoint(_final_dir(out_dir, stage), system=SYSTEM)
    load_state_into(module.model, checkpoint)


def _valid_loader(valid: SingNotes, train: SingNotes, limit: int, batch_size: int) -> DataLoader:
    """A fixed, evenly spread subset of held-out notes (training notes if there are none)."""
    if len(valid) == 0:
        warnings.warn("no validation notes of the trained instruments: validating on training notes",
                      stacklevel=3)
        valid, limit = train, min(limit, 16)
    return DataLoader(Subset(valid, spread_subset(len(valid), limit)), batch_size=batch_size,
                      shuffle=False)


def _last_logged(stage_dir: Path, name: str) -> float:
    """The last value of `name` in the stage's CSV logs (every version, in order), or NaN."""
    value = float("nan")
    versions = sorted((stage_dir / "logs").glob("version_*/metrics.csv"),
                      key=lambda path: int(path.parent.name.split("_")[1]))
    for path in versions:
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get(name):
                    value = float(row[name])
    return value


def _metric(metrics: dict[str, Any], name: str) -> float:
    value = metrics.get(name)
    return float(value) if value is not None else float("nan")


# --------------------------------------------------------------------------- training


def train_note(
    data_dir: str | Path,
    out_dir: str | Path,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
    stages: Sequence[str] = STAGES,
    max_minutes_per_stage: float | None = None,
    max_epochs_per_stage: int | None = None,
    max_steps_per_stage: int | None = None,
    seed: int = 0,
    resume: bool = False,
    checkpoint_minutes: float = DEFAULT_CHECKPOINT_MINUTES,
    instruments: Sequence[str | int] | None = None,
    split_mode: str = "auto",
    validate_notes: int = 128,
    validate_every: int = 500,
    evaluate_notes: int = 64,
    num_workers: int = 0,
    devices: int = 1,
    strategy: str = "auto",
    progress: bool = True,
    command: str = "",
    init_from: str | Path | None = None,
    num_nodes: int = 1,
) -> NoteTrainReport:
    """Train SING's stages in order, checkpointing as they go, and export the model.

    Parameters
    ----------
    data_dir : NSynth-format folder (an orchestrion build or the real NSynth).
    out_dir : run folder (layout in the module docstring).
    preset : "cpu" (default for a new run) or "paper"; a continued run keeps its own.
    overrides : SingConfig fields to change (e.g. ``{"activation": "elu"}``). The model's
        ``n_instruments`` defaults to the number of instruments in the training split.
    stages : the stages to train, a subset of ("autoencoder", "sequence", "finetune").
    max_minutes_per_stage, max_epochs_per_stage, max_steps_per_stage : extra limits per
        stage (minutes of this call: time before a resume does not count; epochs; batches)
        besides the config's epochs.
    seed : seeds every stage (stage k uses seed + k).
    resume : continue: finished stages are skipped, an unfinished one continues from its
        last Lightning checkpoint. Without it, a stage that has results here is an error.
    checkpoint_minutes : period of the Lightning checkpoints.
    instruments : keep only these instruments: vocabulary names (orchestrion builds),
        instrument_strs (e.g. the seed's ``keyboard_acoustic_007``) or dataset ids.
    split_mode : "auto", "folders" or "pairs" (see `orchestrion.systems.sing.data`).
    validate_notes : held-out notes (an evenly spread fixed subset) for ``val/*``.
    validate_every : validate every this many training batches (and after each stage).
    evaluate_notes : test notes evaluated after training (spectral loss, waveform L1, pyin
        pitch accuracy) for the model card; 0 skips it.
    num_workers, devices, strategy, num_nodes : DataLoader workers and Lightning's devices
        (processes per machine), strategy and machines (docs/training.md, "Many machines").
    progress : Lightning's rich progress bar and stage headers on stderr.
    command : the command line, recorded in the model card.
    init_from : a note model (folder or shipped name) whose weights the first stage of a new
        run starts from, instead of from scratch. Its instruments and config must match the
        run's but for training settings and `FRESH_PART_FIELDS` (e.g. adding a harmonic
        branch to a trained model); the card records where the run started.

    Returns
    -------
    NoteTrainReport
    """
    from orchestrion.systems.sing.evaluate import evaluate_note
    from orchestrion.systems.sing.infer import NoteModel

    stages = _check_stages(stages)
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    overrides = dict(overrides or {})
    for stage in stages:
        if resume:
            continue
        if _stage_finished(out_dir, stage) or _last_ckpt(out_dir, stage).is_file():
            raise ConfigError(f"stage {stage} already has results in {out_dir}; pass --resume "
                              "to continue this run, or choose another --out folder")
    if resume and not (out_dir / RUN_FILE).is_file():
        raise ConfigError(f"--resume: nothing to resume in {out_dir} (no {RUN_FILE})")
    for stage in stages:  # a checkpoint holding Python objects is refused before anything runs
        if resume and _last_ckpt(out_dir, stage).is_file() and not _stage_finished(out_dir, stage):
            read_training_checkpoint(_last_ckpt(out_dir, stage), mmap=True)
    start = load_checkpoint(init_from, system=SYSTEM) if init_from is not None else None  # before the data
    plan, train_records = _plan_run(data_dir, out_dir, preset, overrides, instruments, split_mode)
    config = plan.config
    initial = None
    if init_from is not None and start is not None:
        if (out_dir / RUN_FILE).is_file() and not plan.started_from:
            raise ConfigError(f"--init-from: the run in {out_dir} did not start from a model; "
                              "choose another --out folder")
        initial = _initial_weights(init_from, start, plan, stages)
        plan.started_from = plan.started_from or initial.description
    _check_partial_stages_keep_settings(out_dir, stages, plan.extra.get("changed_training_fields", []))
    if rank_zero_only.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_output(out_dir / RUN_FILE) as tmp:
            tmp.write_text(json.dumps(plan.to_dict(), indent=1, sort_keys=True) + "\n")

    train_set = SingNotes(train_records, plan.table, config.n_samples,
                          pitch_shift=config.pitch_shift_semitones)
    valid_set = SingNotes(list_notes(plan.source, "valid", plan.instrument_filter), plan.table,
                          config.n_samples)
    if progress:
        console.print(f"note: {len(train_set)} training / {len(valid_set)} validation notes, "
                      f"{len(plan.table)} instruments: {', '.join(plan.table.names)}", highlight=False)
    started = time.monotonic()
    reports: list[StageReport] = []
    with quiet_lightning(info=False):
        for index, stage in enumerate(STAGES):
            if stage not in stages:
                continue
            if _stage_finished(out_dir, stage):
                reports.append(_finished_report(out_dir, stage))
                if progress:
                    console.print(f"stage {stage}: already finished, skipped", highlight=False)
                continue
            reports.append(_train_stage(
                stage, plan, train_set, valid_set, out_dir, seed + index,
                max_minutes_per_stage, max_epochs_per_stage, max_steps_per_stage,
                checkpoint_minutes, validate_notes, validate_every, num_workers, devices,
                strategy, progress, command, initial, num_nodes=num_nodes,
            ))

    export_dir = out_dir / EXPORT_DIR
    if rank_zero_only.rank != 0:  # other DDP processes: rank 0 evaluates and exports
        return NoteTrainReport(out_dir, export_dir, reports, plan.table, len(train_set),
                               len(valid_set), None, (time.monotonic() - started) / 60)
    last_stage = next(s for s in reversed(STAGES) if _stage_finished(out_dir, s))
    checkpoint = load_checkpoint(_final_dir(out_dir, last_stage), system=SYSTEM)
    sing = Sing(config)
    load_state_into(sing, checkpoint)
    note_model = NoteModel(sing, plan.table, path=export_dir)
    evaluation = None
    if evaluate_notes > 0 and last_stage != "autoencoder":
        try:
            evaluation = evaluate_note(note_model, plan.source.root, split="test",
                                       limit=evaluate_notes, split_mode=plan.source.split_mode,
                                       progress=progress)
        except DatasetError as exc:
            warnings.warn(f"no evaluation in the model card: {exc}", stacklevel=2)
    all_reports = [_finished_report(out_dir, s) for s in STAGES if _stage_finished(out_dir, s)]
    export_note_model(
        note_model, export_dir, plan=plan, stage_reports=all_reports,
        train_notes=len(train_set), valid_notes=len(valid_set), evaluation=evaluation,
        command=command,
    )
    return NoteTrainReport(out_dir, export_dir, reports, plan.table, len(train_set), len(valid_set),
                           evaluation, (time.monotonic() - started) / 60)


def _check_stages(stages: Sequence[str]) -> tuple[str, ...]:
    if isinstance(stages, str):
        stages = [s.strip() for s in stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    if not stages:
        raise ConfigError(f"no stage to train; choose from {', '.join(STAGES)}")
    return tuple(s for s in STAGES if s in stages)


def _check_partial_stages_keep_settings(out_dir: Path, stages: Sequence[str],
                                        changed: Sequence[str]) -> None:
    """ConfigError if training settings (but `MID_STAGE_FIELDS`) change under a stage part-way through."""
    changed = [name for name in changed if name not in MID_STAGE_FIELDS]
    if not changed:
        return
    partial = [s for s in stages if _last_ckpt(out_dir, s).is_file() and not _stage_finished(out_dir, s)]
    if partial:
        raise ConfigError(
            f"stage {partial[0]} is part-way through with the run's old {', '.join(changed)}; "
            "finish it with those (or start the stage afresh in a copy of the run) before "
            "changing them", out_dir)


def _finished_report(out_dir: Path, stage: str) -> StageReport:
    try:
        checkpoint = load_checkpoint(_final_dir(out_dir, stage), system=SYSTEM)
        return StageReport.from_dict(checkpoint.config["stage_report"], skipped=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"stage results are incomplete ({exc})", _final_dir(out_dir, stage)) from None


def _train_stage(
    stage: str,
    plan: RunPlan,
    train_set: SingNotes,
    valid_set: SingNotes,
    out_dir: Path,
    seed: int,
    max_minutes: float | None,
    max_epochs: int | None,
    max_steps: int | None,
    checkpoint_minutes: float,
    validate_notes: int,
    validate_every: int,
    num_workers: int,
    devices: int,
    strategy: str,
    progress: bool,
    command: str = "",
    initial: InitialWeights | None = None,
    num_nodes: int = 1,
) -> StageReport:
    """Fit one stage (resuming its last checkpoint if there is one) and write its final weights.

    A fresh stage starts from the latest finished earlier stage, else from `initial`, else
    from scratch.
    """
    config = plan.config
    L.seed_everything(seed, workers=True, verbose=False)
    module = SingModule(config, stage)
    previous = _latest_finished_before(out_dir, stage)
    start = "from scratch"
    if previous is not None:
        _load_stage_weights(module, out_dir, previous)
        start = f"from the {previous} stage"
    elif initial is not None:
        load_state_into(module.model, initial.checkpoint, skip=initial.skip)
        start = f"from {initial.checkpoint.path}"
    stage_dir = _stage_dir(out_dir, stage)
    epochs = getattr(config, STAGE_EPOCH_FIELD[stage])
    if max_epochs is not None:
        epochs = min(epochs, max_epochs)
    if progress:
        console.print(f"stage {stage}: up to {epochs} epochs {start}", highlight=False)
    train_loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True,
                              num_workers=num_workers, persistent_workers=num_workers > 0)
    valid_loader = _valid_loader(valid_set, train_set, validate_notes, config.batch_size)
    clock = StageClock()
    steps_per_batch = module.optimizer_steps_per_batch
    batches = max(1, len(train_loader))
    last = _last_ckpt(out_dir, stage)
    trainer = build_trainer(
        root_dir=stage_dir, checkpoint=last, steps_per_batch=steps_per_batch, max_steps=max_steps,
        max_epochs=epochs, max_minutes=max_minutes, devices=devices, strategy=strategy, num_nodes=num_nodes,
        progress=progress, checkpoint_minutes=checkpoint_minutes, callbacks=[clock],
        val_check_interval=validate_every, enable_model_summary=False,
        log_every_n_steps=max(1, min(25, batches)),
    )
    initial_val_loss = float("nan")
    if not last.is_file():  # a fresh stage: measure where it starts
        initial_val_loss = _metric(trainer.validate(module, valid_loader, verbose=False)[0], "val/loss")
    if epochs > 0 and (max_steps is None or max_steps > 0):
        with interruption_reported(last):
            trainer.fit(module, train_loader, valid_loader,
                        ckpt_path=str(last) if last.is_file() else None, weights_only=True)
    train_loss = _metric(trainer.callback_metrics, "train/loss")
    if math.isnan(train_loss):  # resumed at its end: no batch ran in this call
        train_loss = _last_logged(stage_dir, "train/loss")
    validation = trainer.validate(module, valid_loader, verbose=False)[0]
    report = StageReport(
        stage=stage,
        steps=trainer.global_step // steps_per_batch,
        minutes=clock.elapsed_s / 60,
        train_loss=train_loss,
        val_loss=_metric(validation, "val/loss"),
        val_waveform_l1=_metric(validation, "val/waveform_l1"),
        initial_val_loss=initial_val_loss,
        command=command,
        settings={name: getattr(config, name) for name in TRAINING_FIELDS},
    )
    if trainer.is_global_zero:
        card = (f"# note (SING) stage `{stage}`\n\n- {report.steps} batches, {report.minutes:.1f} min\n"
                f"- held-out loss {report.val_loss:.4f}\n")
        save_checkpoint(_final_dir(out_dir, stage), SYSTEM,
                        {**plan.to_dict(), "stage": stage, "stage_report": report.to_dict()},
                        module.model.state_dict(), card)
    trainer.strategy.barrier()
    if progress:
        console.print(f"stage {stage}: {report.steps} batches in {report.minutes:.1f} min, "
                      f"train loss {report.train_loss:.4f}, held-out loss {report.val_loss:.4f}",
                      highlight=False)
    return report


# --------------------------------------------------------------------------- export


def export_note_model(
    model: Any,
    folder: Path,
    plan: RunPlan,
    stage_reports: Sequence[StageReport],
    train_notes: int,
    valid_notes: int,
    evaluation: Any = None,
    command: str = "",
) -> Path:
    """Write a NoteModel as safetensors + config (with its instrument table) + model card."""
    config = plan.config
    counts = model.sing.count_parameters()
    stage_rows = [
        f"| {r.stage} | {r.steps:,} | {r.minutes:.1f} | {_number(r.train_loss)} | "
        f"{_number(r.initial_val_loss)} | {r.val_loss:.4f} | {_number(r.val_waveform_l1)} |"
        for r in stage_reports
    ]
    instrument_rows = [f"| {e.display_name} | {e.instrument_str} | {e.lowest_pitch}-{e.highest_pitch} | "
                       f"{len(e.train_pitches)} |" for e in plan.table]
    overrides = ", ".join(f"{k}={v}" for k, v in sorted(plan.overrides.items())) or "none"
    data_line = (f"- data: `{plan.source.root}` ({plan.source.kind}, split by "
                 + ("its split folders" if plan.source.split_mode == "folders"
                    else "hashing (instrument, pitch) 80/10/10")
                 + f"), {train_notes} training notes, {valid_notes} validation notes"
                 + (f", built with `{plan.source.command}`" if plan.source.command else ""))
    card = "\n".join([
        "# note model (SING)",
        "",
        f"- preset `{plan.preset}`, overrides: {overrides}",
        f"- architecture: {config.channels} channels, latent {config.latent_dim}, LSTM "
        f"{config.lstm_layers} x {config.lstm_hidden}, {config.activation}, loss "
        f"{config.loss_transform} ({config.loss_distance}, eps {config.loss_eps})",
        f"- parameters: {counts['total']:,} ({counts['generator']:,} generator, "
        f"{counts['decoder']:,} decoder, {counts['encoder']:,} encoder, unused at inference)",
        f"- output: {config.n_samples:,} samples at {config.sample_rate} Hz",
        f"- training command: `{command}`",
        *([f"- started from: {plan.started_from}"] if plan.started_from else []),
        data_line,
        f"- trained velocities: {', '.join(map(str, plan.table.train_velocities))}",
        "",
        "## Instruments",
        "",
        "| name | instrument_str | trained pitches | count |",
        "|---|---|---|---|",
        *instrument_rows,
        "",
        "## Training (held-out = validation notes of unseen (instrument, pitch) pairs)",
        "",
        "| stage | batches | minutes | last train loss | held-out loss at start | held-out loss "
        "| held-out waveform L1 |",
        "|---|---|---|---|---|---|---|",
        *stage_rows,
        "",
        *_stage_command_lines(stage_reports, config),
    ])
    if evaluation is not None:
        card += "\n## Evaluation\n\n```\n" + evaluation.format() + "\n```\n"
    document = {
        **plan.to_dict(),
        "training": {"command": command, "train_notes": train_notes, "valid_notes": valid_notes,
                     "stages": [r.to_dict() for r in stage_reports]},
        "evaluation": None if evaluation is None else evaluation.to_dict(),
    }
    return save_checkpoint(folder, SYSTEM, document, model.sing.state_dict(), card)


def _stage_command_lines(stage_reports: Sequence[StageReport], config: SingConfig) -> list[str]:
    """Card lines: each stage's own command and the training settings it had that differ
    from the exported config (empty if every stage ran under one command and settings)."""
    commands = {r.command for r in stage_reports}
    differing = [{k: v for k, v in r.settings.items() if getattr(config, k, v) != v}
                 for r in stage_reports]
    if len(commands) <= 1 and not any(differing):
        return []
    lines = ["## Stages, command by command", ""]
    for report, settings in zip(stage_reports, differing):
        note = "".join(f", with {k} = {v}" for k, v in sorted(settings.items()))
        lines.append(f"- {report.stage}: `{report.command or '(not recorded)'}`{note}")
    return [*lines, ""]


def _number(value: float) -> str:
    return "-" if value != value else f"{value:.4f}"

