"""Symbolic music: MIDI I/O, the instrument vocabulary, multi-track pianorolls, image codec."""

from orchestrion.symbolic.images import (
    DEFAULT_GRID,
    ImageGrid,
    PitchWindowWarning,
    images_to_midi,
    midi_to_images,
    score_to_image_roll,
    split_into_images,
    threshold_images,
)
from orchestrion.symbolic.instruments import (
    DrumTrackWarning,
    InstrumentVocabulary,
    ProgramMapping,
    Slot,
    track_label,
)
from orchestrion.symbolic.midi import (
    ScoreRepairWarning,
    as_score,
    melodic_instruments,
    read_midi,
    remove_invalid_notes,
    score_duration,
    write_midi,
)
from orchestrion.symbolic.pianoroll import (
    cut_restrike_gaps,
    frame_to_time,
    note_runs,
    pianoroll_to_score,
    score_to_pianoroll,
    time_to_frame,
)

__all__ = [
    "DEFAULT_GRID",
    "DrumTrackWarning",
    "ImageGrid",
    "InstrumentVocabulary",
    "PitchWindowWarning",
    "ProgramMapping",
    "ScoreRepairWarning",
    "Slot",
    "as_score",
    "cut_restrike_gaps",
    "frame_to_time",
    "images_to_midi",
    "melodic_instruments",
    "midi_to_images",
    "note_runs",
    "pianoroll_to_score",
    "read_midi",
    "remove_invalid_notes",
    "score_duration",
    "score_to_image_roll",
    "score_to_pianoroll",
    "split_into_images",
    "threshold_images",
    "time_to_frame",
    "track_label",
    "write_midi",
]
