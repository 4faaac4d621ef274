"""`orchestrion train render`: fit orGAN on URMP-format data, export a shippable checkpoint."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from orchestrion.checkpoints import (
    Checkpoint,
    load_checkpoint,
    load_state_into,
    read_training_checkpoint,
    save_checkpoint,
)
from orchestrion.errors import ConfigError
from orchestrion.symbolic.instruments import InstrumentVocabulary
from orchestrion.systems.organ.classifier_data import ClassifierDraws, ClassifierMixes
from orchestrion.systems.organ.data import OrganChunks, load_pieces
from orchestrion.systems.organ.discriminator import CLASSIFIER_PART_WEIGHTS, CLASSIFIER_WEIGHTS
from orchestrion.systems.organ.gan import OrganModel
from orchestrion.systems.organ.grow import grow_classifier
from orchestrion.systems.organ.model import DISCRIMINATOR_STATE
from orchestrion.systems.organ.module import OrganModule, RegimeSampler
from orchestrion.systems.organ.note_bank import BankEstimate, estimate_note_bank
from orchestrion.systems.organ.presets import (
    ADDED_WEIGHT_FIELDS,
    BANK_SWITCH_FIELDS,
    CLASSIFIER_FIELDS,
    CLASSIFIER_INPUT_FIELDS,
    RETIRED_FIELDS,
    TRAINING_FIELDS,
    TRAINING_ONLY_FIELDS,
    OrganConfig,
    get_preset,
)
from orchestrion.systems.organ.tracks import trained_slot_names
from orchestrion.training import DEFAULT_CHECKPOINT_MINUTES, build_trainer, interruption_reported, quiet_lightning

SYSTEM = "render"
VALID_CHUNKS = 96


@dataclass
class TrainReport:
    """Where the run wrote its files and what it reached."""

    out_dir: Path
    export_dir: Path
    steps: int
    minutes: float
    metrics: dict[str, float]


def _config_of(init_from: str | Path, values: dict[str, Any]) -> OrganConfig:
    """The orGAN config an init-from model was saved with (ConfigError if it is none)."""
    try:
        return OrganConfig.from_dict(values)
    except (ConfigError, TypeError) as exc:
        raise ConfigError(f"--init-from {init_from}: its config is not an orGAN config ({exc})") from None


def _fresh_weights(init_from: str | Path, start: dict[str, Any], config: OrganConfig) -> tuple[str, ...]:
    """Prefixes of the weights that start fresh instead of from an init-from model.

    Its classifier starts fresh if it has another shape than `config`'s (unless only its
    width grows: :func:`load_start` then grows it), and weights that
    `config` adds (`ADDED_WEIGHT_FIELDS` turned on) start at their neutral values. A model
    with another output prior may be continued with a note bank (`BANK_SWITCH_FIELDS`):
    its harmonic prior's weights are dropped and the bank starts from its estimate; a bank
    model may be continued with another ``bank_floor_db`` (its bank is re-floored). The
    losses and optimiser (`TRAINING_FIELDS`) may differ too; raises ConfigError naming the
    fields if it differs in anything else.
    """
    previous = _config_of(init_from, start)
    before = json.loads(json.dumps(previous.to_dict()))
    wanted = json.loads(json.dumps(config.to_dict()))
    differ = sorted(k for k in set(before) | set(wanted) if before.get(k) != wanted.get(k))
    added = [k for k in differ if k in ADDED_WEIGHT_FIELDS and wanted.get(k) and not before.get(k)]
    kept = CLASSIFIER_FIELDS + CLASSIFIER_INPUT_FIELDS + TRAINING_FIELDS
    shared_parts = set(previous.classifier_parts) & set(config.classifier_parts)
    if "strided" not in shared_parts:
        kept += ("classifier_context",)  # no strided stack is carried over
    other = [k for k in differ if k not in kept and k not in added]
    fresh = tuple(ADDED_WEIGHT_FIELDS[k] for k in added)
    if config.output_prior == "bank" and previous.output_prior != "bank":  # the bank is estimated afresh
        other = [k for k in other if k not in BANK_SWITCH_FIELDS]
        fresh += ("harmonic_output.", "note_bank.")
    elif config.output_prior == "bank":  # another floor: the bank is re-floored (`NoteBank.refloor`)
        other = [k for k in other if k != "bank_floor_db"]
    if other:
        raise ConfigError(f"--init-from {init_from}: its config differs from this run's in {', '.join(other)}")
    reshaped = [k for k in differ if k in CLASSIFIER_FIELDS]
    widths = (previous.classifier_scale, config.classifier_scale)
    hint_added = config.classifier_pitch_hint and not previous.classifier_pitch_hint  # a zero input channel
    voices_added = config.classifier_voices and not previous.classifier_voices  # a zero input channel
    width_grows = config.classifier_network == "strided" and widths[1] >= widths[0]  # only the strided stack grows
    growable = {field for field, grows in (("classifier_width", width_grows), ("classifier_pitch_hint", hint_added),
                                           ("classifier_voices", voices_added)) if grows}
    if "classifier_network" in reshaped and not set(reshaped) - growable - {"classifier_network"}:
        new_parts = [part for part in config.classifier_parts if part not in shared_parts]
        warnings.warn(f"--init-from {init_from}: its instrument classifier becomes {config.classifier_network!r}"
                      + (f"; the {' and '.join(new_parts)} part starts fresh" if new_parts else "")
                      + (f"; the {' and '.join(sorted(shared_parts))} part keeps its weights" if shared_parts else ""),
                      stacklevel=3)  # a network present before and after keeps its weights
        fresh += tuple(prefix for part, prefixes in CLASSIFIER_PART_WEIGHTS.items()
                       if part not in shared_parts for prefix in prefixes)
    elif set(reshaped) - growable:
        warnings.warn(f"--init-from {init_from}: its instrument classifier has another shape; "
                      "the classifier starts fresh", stacklevel=3)
        return fresh + CLASSIFIER_WEIGHTS
    new_input = [k for k in differ if k in CLASSIFIER_INPUT_FIELDS]
    if new_input:
        warnings.warn(f"--init-from {init_from}: its instrument classifier now reads another input "
                      f"({', '.join(new_input)}); it starts from its trained weights", stacklevel=3)
    if "classifier_width" in reshaped and widths[1] > widths[0]:  # equal: once implicit and once set
        warnings.warn(f"--init-from {init_from}: its instrument classifier grows from width "
                      f"{widths[0]:g} to {widths[1]:g} (it names instruments as before at first)",
                      stacklevel=3)
    if hint_added:
        warnings.warn(f"--init-from {init_from}: its instrument classifier now also reads the pitch hint "
                      "(its input weights start at zero: it names instruments as before at first)",
                      stacklevel=3)
    if voices_added:
        warnings.warn(f"--init-from {init_from}: its mel classifier now names each voice (the voice channel's "
                      "weights start at zero; it pools each voice's frames only)", stacklevel=3)
    return fresh


def _has_discriminator(start: Checkpoint) -> bool:
    """The model holds a discriminator's weights (a run's export does, a shipped model not)."""
    return any(key.startswith(DISCRIMINATOR_STATE) for key in start.state_dict)


def load_start(model: OrganModel, init_from: str | Path, start: Checkpoint, config: OrganConfig) -> None:
    """Load an init-from model's weights into `model` (built from `config`): weights that
    start fresh are left as they are (`_fresh_weights`), a narrower classifier is grown."""
    skip = _fresh_weights(init_from, start.config, config)
    if model.discriminator is not None and not _has_discriminator(start):
        warnings.warn(f"--init-from {init_from}: it carries no discriminator (shipped models leave it out); "
                      "the discriminator starts fresh", stacklevel=2)
        skip += (DISCRIMINATOR_STATE,)
    grown = grow_classifier(start.state_dict, model)  # what starts fresh is skipped anyway
    load_state_into(model, replace(start, state_dict=grown), skip=skip)


@torch.no_grad()
def start_note_bank(model: OrganModel, estimate: BankEstimate) -> None:
    """Load a note-bank estimate and zero the generator's gain images, so the model renders
    the bank as estimated (plus its free output) at its first step."""
    model.note_bank.load_estimate(estimate)
    head = model.generator.head
    head.weight[:, 1:] = 0.0
    if head.bias is not None:
        head.bias[1:] = 0.0


def _valid_loader(dataset: OrganChunks, batch_size: int) -> DataLoader:
    """A fixed, evenly spread subset of held-out chunks, so validation is cheap and comparable."""
    step = max(1, len(dataset) // VALID_CHUNKS)
    return DataLoader(Subset(dataset, list(range(0, len(dataset), step))[:VALID_CHUNKS]),
                      batch_size=batch_size, shuffle=False)


def _check_resumed_run(last: Path, classifier_only: bool, config: OrganConfig) -> int:
    """Refuse to resume a run under another mode (classifier-only or not) or another model;
    return the checkpoint's optimiser-step count (Lightning's ``global_step``).

    Losses and the optimiser (`TRAINING_FIELDS`) may change on resume, except turning the
    generator's moving average on or off (it is part of the saved state).
    """
    # mmap: only the settings are read here; Lightning reads the weights when it resumes
    checkpoint = read_training_checkpoint(last, mmap=True)
    saved = checkpoint["hyper_parameters"]
    trained_alone = bool(saved.get("classifier_only", False))
    if trained_alone != classifier_only:
        how = "with" if trained_alone else "without"
        raise ConfigError(f"--resume: {last} was trained {how} --classifier-only; resume it {how} the flag")
    before = {k: v for k, v in json.loads(json.dumps(saved.get("config", {}))).items() if k not in RETIRED_FIELDS}
    wanted = json.loads(json.dumps(config.to_dict()))

    def refused(key: str) -> bool:
        if key == "bank_keys":  # a preset's 0 until the bank is estimated again from the same data
            return bool(wanted.get(key)) and before.get(key) != wanted.get(key)
        if key == "ema_decay":
            return bool(before.get(key)) != bool(wanted.get(key))
        return key not in TRAINING_FIELDS

    differ = [k for k in sorted(set(before) | set(wanted)) if before.get(k) != wanted.get(k) and refused(k)]
    if differ:
        raise ConfigError(f"--resume: {last} was trained with other {', '.join(differ)}; "
                          "resume with the run's own --preset, --init-from and --set values")
    return int(checkpoint.get("global_step", 0))


def train_render(
    data_dir: str | Path,
    out_dir: str | Path,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
    max_steps: int = 20_000,
    max_minutes: float | None = None,
    seed: int = 0,
    resume: bool = False,
    checkpoint_minutes: float = DEFAULT_CHECKPOINT_MINUTES,
    validate_every: int = 500,
    limit_pieces: int | None = None,
    devices: int = 1,
    strategy: str = "auto",
    num_nodes: int = 1,
    num_workers: int = 0,
    command: str = "",
    progress: bool = True,
    init_from: str | Path | None = None,
    classifier_only: bool = False,
    keep_checkpoints: bool = False,
    on_start: Callable[[OrganConfig], None] | None = None,
) -> TrainReport:
    """Train, checkpoint every `checkpoint_minutes` (and at the end), export safetensors.

    `max_steps` counts generator batches; the run also stops after `max_minutes` of this
    call (time before a resume does not count). With
    `resume`, training continues from `<out_dir>/checkpoints/last.ckpt` (our own file).
    `init_from` starts a new run from an exported model's weights (e.g. the shipped
    `render-cpu`, to keep training it on a new machine). With no `preset`, the run's config
    is that model's own with `overrides` applied; with one, the preset's must match it.
    Without either, the preset is ``cpu``.
    `classifier_only` trains just the instrument classifier of the `init_from` model (the
    generator and patch discriminator are exported unchanged); `max_steps` then counts
    classifier batches. `on_start` is told the run's config once every check has passed, as
    training starts.
    """
    if classifier_only and init_from is None and not resume:
        raise ConfigError("--classifier-only trains the classifier of an existing model: give --init-from MODEL")
    start = load_checkpoint(init_from, SYSTEM) if init_from is not None else None
    start_config = _config_of(init_from, start.config) if start is not None else None
    if start_config is not None and preset is None:
        config = start_config.replace(**(overrides or {}))
    else:
        config = get_preset(preset or "cpu", **(overrides or {}))
    if classifier_only and start is not None and not _has_discriminator(start):
        raise ConfigError(f"--classifier-only: {init_from} carries no instrument classifier (shipped models leave "
                          "the discriminator out); give the model folder of the run that trained it")
    if classifier_only and start_config is not None and start_config.bank_floor_db != config.bank_floor_db:
        raise ConfigError("--classifier-only leaves the note bank as it is: bank_floor_db cannot change")
    out_dir = Path(out_dir)
    last = out_dir / "checkpoints" / "last.ckpt"
    resumed_at = 0
    if resume:  # before the pieces are loaded: a wrong resume fails at once
        if not last.is_file():
            raise ConfigError(f"--resume: no checkpoint to resume from at {last}")
        resumed_at = _check_resumed_run(last, classifier_only, config)
    L.seed_everything(seed, workers=True, verbose=False)
    train_pieces = load_pieces(data_dir, config, split="train", limit=limit_pieces, progress=progress)
    try:
        valid_pieces = load_pieces(data_dir, config, split="valid", limit=limit_pieces, progress=progress)
    except ConfigError:
        warnings.warn("no 'valid' split in the data: validating on training pieces", stacklevel=2)
        valid_pieces = train_pieces[:2]
    estimate = refloor = None
    if config.output_prior == "bank" and (start_config is None or start_config.output_prior != "bank"):
        estimate = estimate_note_bank(train_pieces, config, progress=progress)
        config = config.replace(bank_keys=len(estimate.keys))
    elif config.output_prior == "bank" and start_config.bank_floor_db != config.bank_floor_db and not resume:
        before = config.replace(bank_floor_db=start_config.bank_floor_db)
        refloor = (estimate_note_bank(train_pieces, before, progress=progress),
                   estimate_note_bank(train_pieces, config, progress=progress))
    max_subset = 1 if config.regime == "single" else None
    train_set = OrganChunks(train_pieces, config, max_subset_size=max_subset)
    valid_set = OrganChunks(valid_pieces, config, max_subset_size=max_subset, stride_s=config.chunk_s)
    module = OrganModule(config, total_steps=max_steps, label_counts=train_set.label_counts().tolist(),
                         n_chunks=len(train_set), classifier_only=classifier_only)
    if start is not None:
        load_start(module.model, init_from, start, config)
    if estimate is not None:
        start_note_bank(module.model, estimate)
    if refloor is not None:
        module.model.note_bank.refloor(*refloor)
    if module.generator_average is not None and (start is not None or estimate is not None):
        module.generator_average.reset(module.model)
    if start is not None:
        history = start.history()
        started_from = f"`{start.path}` ({'; '.join(history)})" if history else f"`{start.path}`"
    else:
        started_from = ""
    if refloor is not None:
        started_from += (f", its note bank re-floored from {start_config.bank_floor_db:g} to "
                         f"{config.bank_floor_db:g} dB")
    if resume:
        resumed = (f"resumed from `{last}` at step {module.training_steps(resumed_at):,} "
                   "(the steps above count the whole run, the minutes this part)")
        started_from = (f"{started_from}, then {resumed}: the checkpoint's weights, optimiser state "
                        "and moving average, not that model's") if started_from else resumed
    epoch_size = max(config.batch_size, min(len(train_set), 1000 * config.batch_size))
    if classifier_only:
        sampler: Sampler = ClassifierDraws(train_set, epoch_size=epoch_size, seed=seed)
        drawn_from: Dataset = ClassifierMixes(train_set)
    else:
        sampler = module.sampler = RegimeSampler(train_set, single_only=config.regime != "multi",
                                                 epoch_size=epoch_size, seed=seed)
        drawn_from = train_set
    train_loader = DataLoader(drawn_from, batch_size=config.batch_size, sampler=sampler,
                              num_workers=num_workers, drop_last=True, persistent_workers=num_workers > 0)
    with quiet_lightning(info=progress):
        trainer = build_trainer(
            root_dir=out_dir, checkpoint=last, steps_per_batch=module._steps_per_batch(),
            max_steps=max_steps, max_minutes=max_minutes, devices=devices, strategy=strategy,
            num_nodes=num_nodes, progress=progress, checkpoint_minutes=checkpoint_minutes, keep_checkpoints=keep_checkpoints,
            val_check_interval=min(validate_every, epoch_size // config.batch_size),
            log_every_n_steps=25, enable_model_summary=progress,
        )
        if on_start is not None and trainer.is_global_zero:
            on_start(config)
        started = time.time()
        with interruption_reported(last):
            trainer.fit(module, train_loader, _valid_loader(valid_set, config.batch_size),
                        ckpt_path=str(last) if resume else None, weights_only=True)
    minutes = (time.time() - started) / 60
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    steps = module.training_steps(trainer.global_step)
    export_dir = out_dir / "model"
    if trainer.is_global_zero:  # one process writes the model (under DDP every rank holds its weights)
        export_render_model(module, export_dir, command=command, data_dir=data_dir,
                            train_pieces=len(train_pieces), valid_pieces=len(valid_pieces),
                            steps=steps, minutes=minutes, metrics=metrics, started_from=started_from)
    return TrainReport(out_dir, export_dir, steps, minutes, metrics)


def export_render_model(module: OrganModule, folder: Path, command: str, data_dir: str | Path,
                        train_pieces: int, valid_pieces: int, steps: int, minutes: float,
                        metrics: dict[str, float], started_from: str = "") -> Path:
    """Write the model as safetensors + config + a first model card (evaluation adds to it).

    `started_from` describes the model a continued run (``init_from``) began with, and the
    checkpoint a resumed one went on from; `minutes` is this part's time.
    """
    config = module.config
    counts = module.model.parameter_counts()
    slots = trained_slot_names(module.hparams.get("label_counts"), InstrumentVocabulary.default())
    manifest = Path(data_dir) / "manifest.json"
    data_command = json.loads(manifest.read_text()).get("command", "") if manifest.is_file() else ""
    card = "\n".join([
        "# render model (orGAN)",
        "",
        f"- preset fields: encoding `{config.encoding}`, base width {config.base_width}, "
        f"discriminator {config.discriminator}, {config.sample_rate} Hz, n_fft {config.n_fft}, hop {config.hop_length}",
        f"- parameters: {counts['generator'] + counts['encoding']:,} generator, {counts['discriminator']:,} discriminator"
        + (f", {counts['learned lobes']:,} learned lobe corrections" if counts["learned lobes"] else "")
        + (f", a note bank of {config.bank_keys:,} keys ({counts['note bank']:,} weights)"
           if counts["note bank"] else ""),
        f"- trained: {steps:,} steps, {minutes:.1f} minutes on this machine"
        + (" (the instrument classifier alone; the generator and patch discriminator as started from)"
           if module.classifier_only else ""),
        *([f"- started from: {started_from}"] if started_from else []),
        *([f"- exported generator: the moving average of its weights (decay {config.ema_decay})"]
          if module.generator_average is not None else []),
        f"- trained slots: {', '.join(slots)}",
        f"- training command: `{command}`",
        f"- data: `{data_dir}` ({train_pieces} training pieces, {valid_pieces} validation pieces)"
        + (f", built with `{data_command}`" if data_command else ""),
        "",
        "## Validation during training (chunks of held-out pieces)",
        "",
        *[f"- {name}: {value:.4f}" for name, value in sorted(metrics.items())],
        "",
    ])
    return save_checkpoint(folder, SYSTEM, config.to_dict(), module.export_state(), card,
                           training_fields=TRAINING_ONLY_FIELDS)


def torch_threads(count: int | None) -> None:
    """Pin torch's intra-op threads (2 on our machines)."""
    if count:
        torch.set_num_threads(count)
