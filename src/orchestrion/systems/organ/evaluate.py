"""`orchestrion evaluate render`: a render model on the held-out pieces of a URMP-format folder.

Two protocols, one report (:class:`RenderEvaluation`):

1. **Table 6.3 on chunks** (the seed's internal tests). Held-out pieces are cut into
   training-sized chunks exactly as training cuts them (:class:`~.data.OrganChunks`,
   every non-empty subset of the parts, stride = chunk length so chunks do not overlap;
   at most `max_chunks`, evenly spread). Generated and true spectrograms are compared:
   MS-SSIM and SWD on dB images (``10 log10 |X|^2`` of the log-power, mapped from
   ``[db_floor, db_ceiling]`` to [0, 1] and clipped: the images the training's MS-SSIM
   term sees), L1 on the log-power spectrograms themselves (the training's ``val/l1``).
   The instrument-classifier columns are the seed's: the model's own classifier fed the
   *generated* chunks; the same classifier on the *real* chunks is reported on a line of
   its own. Without a classifier those figures are NaN.
2. **Audio on whole pieces.** Each held-out piece's ``Sco_*.mid`` is rendered with
   :func:`~.infer.render_score`, taken as ``orchestrion render`` writes it (a 16-bit WAV,
   :func:`~orchestrion.audio.io.as_saved_wav`, as the protocol's ``compare_audio.py`` reads
   our file) and compared with the piece's ``AuMix`` (for our
   datasets: FluidSynth with the same SoundFont) by
   :func:`orchestrion.metrics.compare_audio` (as its two halves, ``protocol_pair`` and
   ``compare_pair``, so the error budget reuses the prepared pair): MS-SSIM of dB images,
   MR-STFT distance, LSD; the mean over pieces is reported.

With ``budget=True`` (``--budget``), each piece also gets an error budget
(:mod:`orchestrion.metrics.budget`): its MS-SSIM with one region of the render's dB image
(a reference level, a frequency band, on or between partials, the first 96 ms of the notes)
replaced by the reference's; the report shows the mean over pieces.

A PNG shows the first piece's reference and our render side by side (dB re the
reference's peak, the protocol's images); for a model with learned partial lobes, a second
PNG beside it (``NAME-lobes.png``) shows each trained instrument's corrections, and with
the error budget a third (``NAME-budget.png``) draws the mean budget's gains.

Dropout stays as the model has it (off unless the model was loaded with
``deterministic=False``) and is seeded, so a report is reproducible.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from orchestrion.audio.io import as_saved_wav
from orchestrion.checkpoints import load_checkpoint
from orchestrion.data.urmp import URMPDataset
from orchestrion.errors import ConfigError
from orchestrion.metrics import (
    AudioComparison,
    ClassifierScores,
    Table63Row,
    instrument_classifier_scores,
    spectrogram_l1,
    table63_row,
)
from orchestrion.metrics.audio import (
    DB_IMAGE_HOP_LENGTH,
    DB_IMAGE_RANGE_DB,
    PROTOCOL_SAMPLE_RATE,
    ProtocolPair,
    compare_pair,
    protocol_pair,
)
from orchestrion.metrics.budget import ErrorBudget, image_error_budget, mean_budget
from orchestrion.plots import pyplot, save_error_budget_png, save_figure, save_lobe_corrections_png
from orchestrion.symbolic.midi import melodic_instruments
from orchestrion.systems.organ.data import OrganChunks, load_pieces
from orchestrion.systems.organ.discriminator import Discriminator, build_discriminator
from orchestrion.systems.organ.infer import (
    DEFAULT_N_ITER,
    DEFAULT_PHASE_INIT,
    RenderModel,
    render_score,
)
from orchestrion.systems.organ.baselines import BaselineTable, add_piece_baselines, new_table
from orchestrion.systems.organ.losses import OrganLoss
from orchestrion.systems.organ.model import DISCRIMINATOR_STATE

MAX_CHUNKS = 128
"""Held-out chunks scored for Table 6.3 at most (evenly spread over all of them)."""
FALLBACK_SPLIT = "valid"


@dataclass(frozen=True)
class PieceScore:
    """The audio protocol's figures for one piece (and its error budget, when asked for)."""

    piece_id: str
    comparison: AudioComparison
    warnings: list[str] = field(default_factory=list)
    budget: ErrorBudget | None = None


@dataclass(frozen=True)
class RenderEvaluation:
    """Everything :func:`evaluate_render` measured.

    Attributes
    ----------
    model : str
        What was evaluated (checkpoint folder or description).
    data_dir : Path
    split : str
        The split evaluated.
    note : str
        Why another split was used, if one was ('' otherwise).
    n_chunks : int
        Chunks behind the Table 6.3 row.
    table63 : Table63Row
        Classifier columns on the generated chunks (the seed's protocol).
    real_classifier : ClassifierScores or None
        The same classifier on the real chunks (None without a classifier).
    generated_classifier : ClassifierScores or None
        The classifier on the generated chunks in full (the Table 6.3 row's columns, and its
        macro accuracy by the number of instruments in a chunk); None without a classifier.
    pieces : list of PieceScore
        Audio-protocol figures per piece.
    png : Path or None
        The side-by-side spectrogram picture, if written.
    lobes_png : Path or None
        The learned partial lobes' picture, if written (models with learned lobes).
    budget_png : Path or None
        The mean error budget's picture, if written (``budget=True`` with a PNG).
    seconds : float
        Wall time of the evaluation.
    per_track : bool
        Whether the pieces were rendered a part at a time (else the whole mix at once).
    """

    model: str
    data_dir: Path
    split: str
    note: str
    n_chunks: int
    table63: Table63Row
    real_classifier: ClassifierScores | None
    pieces: list[PieceScore]
    png: Path | None
    seconds: float
    per_track: bool = True
    lobes_png: Path | None = None
    budget_png: Path | None = None
    generated_classifier: ClassifierScores | None = None
    baselines: BaselineTable | None = None

    def audio_mean(self) -> dict[str, float]:
        """Mean MS-SSIM, MR-STFT and LSD (dB) over the pieces."""
        if not self.pieces:
            return {"ms_ssim": math.nan, "mr_stft": math.nan, "lsd": math.nan}
        return {
            name: float(np.mean([getattr(p.comparison, name) for p in self.pieces]))
            for name in ("ms_ssim", "mr_stft", "lsd")
        }

    def budget_mean(self) -> ErrorBudget | None:
        """The pieces' error budgets averaged region by region (None if none was computed)."""
        budgets = [piece.budget for piece in self.pieces if piece.budget is not None]
        return mean_budget(budgets) if budgets else None

    def format(self) -> str:
        """Plain text: the Table 6.3 row, the classifier on real chunks, the audio table."""
        lines = [
            f"render model {self.model}",
            f"data {self.data_dir}, split {self.split!r}"
            + (f" ({self.note})" if self.note else ""),
        ]
        if self.baselines is not None:
            lines += ["", self.baselines.format()]
        lines += [
            "",
            f"Table 6.3 on {self.n_chunks} chunks of the {self.split!r} pieces (MS-SSIM, SWD "
            "on dB images; L1 on log-power; classifier fed the generated chunks)",
            self.table63.format(label="this model"),
        ]
        if self.real_classifier is not None:
            scores = self.real_classifier
            lines.append(
                f"classifier on the real chunks: AUC {scores.auc:.4f}  "
                f"microACC {scores.micro_accuracy:.4f}  macroACC {scores.macro_accuracy:.4f}"
            )
            lines.append("macroACC by the number of instruments in a chunk (chunks):")
            if self.generated_classifier is not None:
                lines.append(f"  generated  {self.generated_classifier.format_macro_by_count()}")
            lines.append(f"  real       {scores.format_macro_by_count()}")
        else:
            lines.append("classifier: this model has none")
        width = max([len("piece"), len("mean")] + [len(p.piece_id) for p in self.pieces])
        count = f"{len(self.pieces)} whole piece" + ("" if len(self.pieces) == 1 else "s")
        mode = "each part rendered alone" if self.per_track else "all parts rendered at once"
        lines += [
            "",
            f"audio protocol on {count}, {mode} "
            "(our render vs the piece's AuMix; lower MR-STFT and LSD are better)",
            f"{'piece'.ljust(width)}  {'MS-SSIM':>8}  {'MR-STFT':>8}  {'LSD dB':>8}",
        ]
        for piece in self.pieces:
            c = piece.comparison
            lines.append(
                f"{piece.piece_id.ljust(width)}  {c.ms_ssim:8.4f}  {c.mr_stft:8.4f}  {c.lsd:8.2f}"
            )
        mean = self.audio_mean()
        figures = f"{mean['ms_ssim']:8.4f}  {mean['mr_stft']:8.4f}  {mean['lsd']:8.2f}"
        lines.append(f"{'mean'.ljust(width)}  {figures}")
        budget = self.budget_mean()
        if budget is not None:
            lines += ["", f"error budget, mean over {count}:", budget.format()]
        if self.png is not None:
            lines += ["", f"spectrograms: {self.png}"]
        if self.lobes_png is not None:
            lines.append(f"learned partial lobes: {self.lobes_png}")
        if self.budget_png is not None:
            lines.append(f"error budget: {self.budget_png}")
        lines.append(f"({self.seconds:.1f} s)")
        return "\n".join(lines)


def _held_out_records(data_dir: Path, split: str, limit: int | None) -> tuple[str, str, list]:
    """(split used, note, records); falls back from an empty split to 'valid'."""
    records = URMPDataset(data_dir, split=split).records
    note = ""
    if not records and split != FALLBACK_SPLIT:
        fallback = URMPDataset(data_dir, split=FALLBACK_SPLIT).records
        if fallback:
            note = f"split {split!r} is empty: evaluated on {FALLBACK_SPLIT!r} instead"
            split, records = FALLBACK_SPLIT, fallback
    if not records:
        raise ConfigError(
            f"no pieces in split {split!r}"
            + ("" if split == FALLBACK_SPLIT else f" nor in {FALLBACK_SPLIT!r}")
            + " (see splits.json; --split train evaluates "
            "on training pieces)",
            data_dir,
        )
    return split, note, records[:limit] if limit else records


@torch.inference_mode()
def own_classifier(model: RenderModel) -> Discriminator | None:
    """The model's own instrument classifier, or None: the discriminator of a network built
    with one, else the one whose weights the model's folder holds (a run's export keeps its
    discriminator; rendering never builds it and shipped models carry none)."""
    if not model.config.uses_classifier:
        return None
    discriminator = getattr(model.network, "discriminator", None)
    if discriminator is None and model.source is not None and model.source.is_dir():
        state = load_checkpoint(model.source, system="render").state_dict
        weights = {k[len(DISCRIMINATOR_STATE):]: v for k, v in state.items() if k.startswith(DISCRIMINATOR_STATE)}
        if weights:
            discriminator = build_discriminator(model.config, model.network.encoding.out_channels)
            discriminator.load_state_dict(weights)
    if discriminator is None or not discriminator.has_classifier:
        return None
    return discriminator.eval().requires_grad_(False)


def _chunk_figures(
    model: RenderModel,
    data_dir: Path,
    split: str,
    limit: int | None,
    max_chunks: int,
    seed: int,
    progress: bool,
) -> tuple[int, Table63Row, ClassifierScores | None, ClassifierScores | None]:
    """(chunks scored, the Table 6.3 row, the classifier on the real and on the generated chunks)."""
    config = model.config
    pieces = load_pieces(data_dir, config, split=split, limit=limit, progress=progress)
    chunks = OrganChunks(pieces, config, stride_s=config.chunk_s)
    step = max(1, math.ceil(len(chunks) / max_chunks))
    indices = list(range(0, len(chunks), step))[:max_chunks]
    loss = OrganLoss(config)
    network = model.network
    classifier = own_classifier(model)

    def image(spectrogram: torch.Tensor) -> torch.Tensor:
        return loss.unit_db(spectrogram).clamp(0.0, 1.0)

    real_images, fake_images, real_logs, fake_logs = [], [], [], []
    fake_probabilities, real_probabilities, labels = [], [], []
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for start in range(0, len(indices), config.batch_size):
            items = [chunks[i] for i in indices[start : start + config.batch_size]]
            roll = torch.stack([item["roll"] for item in items])
            onsets = torch.stack([item["onsets"] for item in items])
            audio = torch.stack([item["audio"] for item in items])
            real = model.target(audio).unsqueeze(1)
            ages = torch.stack([item["ages"] for item in items]) if config.uses_note_ages else None
            fake = model(roll, onsets, ages)
            real_logs.append(real)
            fake_logs.append(fake)
            real_images.append(image(real))
            fake_images.append(image(fake))
            labels.append(torch.stack([item["instruments"] for item in items]))
            if classifier is not None:
                condition = network.condition(roll, onsets if config.onset_channels else None)
                fake_probabilities.append(torch.sigmoid(classifier(fake, condition).instrument_logits))
                real_probabilities.append(torch.sigmoid(classifier(real, condition).instrument_logits))
    truth = torch.cat(labels)
    if fake_probabilities:
        probabilities = torch.cat(fake_probabilities)
        real_scores = instrument_classifier_scores(torch.cat(real_probabilities), truth)
        generated_scores = instrument_classifier_scores(probabilities, truth)
    else:  # no classifier: the columns become NaN below (placeholders keep table63_row happy)
        probabilities, real_scores, generated_scores = torch.full_like(truth, 0.5), None, None
    row = table63_row(
        torch.cat(real_images), torch.cat(fake_images), probabilities, truth, seed=seed
    )
    row = replace(row, l1=spectrogram_l1(torch.cat(real_logs), torch.cat(fake_logs)))
    if real_scores is None:
        row = replace(row, auc=math.nan, micro_acc=math.nan, macro_acc=math.nan)
    return len(indices), row, real_scores, generated_scores


def save_comparison_png(path: str | Path, pair: ProtocolPair, title: str = "") -> Path:
    """Reference and candidate spectrograms side by side, dB re the reference's peak (atomic write).

    `pair` is the two signals as the protocol prepares them
    (:func:`~orchestrion.metrics.audio.protocol_pair`), drawn as its dB images (Hann n_fft
    1024, hop 256, 80 dB range).
    """
    plt = pyplot()
    images = [(image.numpy() - 1.0) * DB_IMAGE_RANGE_DB for image in pair.images]
    duration_s = images[0].shape[1] * DB_IMAGE_HOP_LENGTH / PROTOCOL_SAMPLE_RATE
    figure, axes = plt.subplots(
        1,
        2,
        figsize=(min(18, 6 + duration_s / 2), 4.5),
        dpi=100,
        sharey=True,
        constrained_layout=True,
    )
    for axis, spectrogram, name in zip(
        axes, images, ("reference (AuMix)", "orGAN render"), strict=True
    ):
        shown = axis.imshow(
            spectrogram,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=-DB_IMAGE_RANGE_DB,
            vmax=0.0,
            extent=(0.0, duration_s, 0.0, PROTOCOL_SAMPLE_RATE / 2),
        )
        axis.set_title(name)
        axis.set_xlabel("time (s)")
    axes[0].set_ylabel("frequency (Hz)")
    figure.colorbar(shown, ax=axes, label="dB (re. reference peak)")
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)


def save_lobes_png(path: str | Path, model: RenderModel) -> Path:
    """Each trained instrument's learned partial-lobe corrections, in dB, as one PNG."""
    head = model.network.harmonic_output
    if head is None or head.lobe_corrections is None:
        raise ConfigError("this render model has no learned partial lobes to draw")
    corrections = head.on_grid(head.lobe_corrections.detach().float()) * (10 / math.log(10))  # dB
    names = {model.vocabulary[slot].name: corrections[slot].numpy() for slot in model.trained_slots}
    return save_lobe_corrections_png(path, names, (head.lobes > 0).numpy(), model.config.sample_rate)


def evaluate_render(
    model: RenderModel | str | Path,
    data_dir: str | Path,
    split: str = "test",
    limit: int | None = None,
    out_png: str | Path | None = None,
    *,
    max_chunks: int = MAX_CHUNKS,
    seed: int = 0,
    n_iter: int = DEFAULT_N_ITER,
    phase_init: str = DEFAULT_PHASE_INIT,
    per_track: bool = True,
    noise_subtraction: bool = False,
    budget: bool = False,
    baselines: bool = True,
    judge=None,
    progress: bool = False,
) -> RenderEvaluation:
    """Evaluate a render model on the held-out pieces of a URMP-format folder (see module notes).

    Parameters
    ----------
    model : RenderModel, or a model name / checkpoint folder
    data_dir : str or Path
        A URMP-format folder with ``splits.json``.
    split : str
        Split to evaluate; an empty one falls back to ``"valid"`` (the report says so).
    limit : int, optional
        At most this many pieces.
    out_png : path, optional
        Where to write the side-by-side spectrograms of the first piece.
    max_chunks : int
        Chunks scored for Table 6.3 at most.
    seed : int
        Seeds the dropout draws, the SWD projections and the phase.
    n_iter, phase_init : int, str
        Griffin-Lim iterations and initial phase of the whole-piece renders.
    per_track : bool
        Render each part alone and combine (the render default); False renders the mix.
    noise_subtraction : bool
        Subtract the generator's empty-roll magnitude, as `render --noise-subtraction`.
    budget : bool
        Also compute each piece's error budget (:mod:`orchestrion.metrics.budget`).
    baselines : bool
        Also render the baselines and score every row with the instrument judge
        (:mod:`~orchestrion.systems.organ.baselines`): the report's headline table.
    judge : InstrumentJudge, judge folder or None
        The judge for that table (default: the shipped ``judge-cpu``).
    progress : bool
        Progress bars on stderr.

    Returns
    -------
    RenderEvaluation
    """
    started = time.perf_counter()
    model = model if isinstance(model, RenderModel) else RenderModel.from_pretrained(model)
    data_dir = Path(data_dir)
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1 piece, got {limit}")
    if max_chunks < 1:
        raise ConfigError(f"max_chunks must be at least 1, got {max_chunks}")
    split, note, records = _held_out_records(data_dir, split, limit)
    n_chunks, row, real_scores, generated_scores = _chunk_figures(
        model, data_dir, split, limit, max_chunks, seed, progress
    )
    dataset = URMPDataset(data_dir, split=split)
    pieces: list[PieceScore] = []
    png = None
    table = new_table(judge) if baselines else None
    options = {"seed": seed, "n_iter": n_iter, "phase_init": phase_init, "per_track": per_track,
               "noise_subtraction": noise_subtraction}
    for record in records:
        if record.score_path is None:
            continue
        reference, reference_rate = dataset.load_mix(record)
        result = render_score(
            record.score_path, model, seed=seed, n_iter=n_iter, phase_init=phase_init,
            per_track=per_track,
            noise_subtraction=noise_subtraction, progress=progress,
        )
        audio = as_saved_wav(result.audio, result.sample_rate)  # what `render` writes
        pair = protocol_pair(reference, audio, reference_rate, result.sample_rate)
        comparison = compare_pair(pair)
        if table is not None:
            add_piece_baselines(table, model, dataset.load_score(record), reference, reference_rate,
                                audio, result.sample_rate, options)
        piece_budget = None
        if budget:
            onsets = [
                note.start
                for instrument in melodic_instruments(dataset.load_score(record))
                for note in instrument.notes
            ]
            piece_budget = image_error_budget(*pair.images, onsets_s=onsets)
        pieces.append(PieceScore(record.piece_id, comparison, result.warnings, piece_budget))
        if out_png is not None and png is None:
            png = save_comparison_png(out_png, pair, title=record.piece_id)
    if not pieces:
        raise ConfigError(
            f"no held-out piece of split {split!r} has a Sco_*.mid score to render", data_dir
        )
    lobes_png = None
    harmonic = model.network.harmonic_output
    if png is not None and harmonic is not None and harmonic.lobe_corrections is not None:
        lobes_png = save_lobes_png(png.with_name(f"{png.stem}-lobes.png"), model)
    budget_png = None
    mean = mean_budget([p.budget for p in pieces]) if budget else None
    if png is not None and mean is not None:
        budget_png = save_error_budget_png(
            png.with_name(f"{png.stem}-budget.png"), mean, title=f"error budget, {len(pieces)} pieces"
        )
    source = str(model.source) if model.source is not None else "(in memory)"
    return RenderEvaluation(
        source,
        data_dir,
        split,
        note,
        n_chunks,
        row,
        real_scores,
        pieces,
        png,
        time.perf_counter() - started,
        per_track,
        lobes_png,
        budget_png,
        generated_scores,
        table,
    )


__all__ = ["PieceScore", "RenderEvaluation", "evaluate_render", "save_comparison_png", "save_lobes_png"]
