"""The instrument vocabulary: slot order, the complete GM table, names, drums."""

from __future__ import annotations

import json
import warnings

import pretty_midi
import pytest

from orchestrion.errors import ConfigError
from orchestrion.symbolic import DrumTrackWarning, InstrumentVocabulary
from orchestrion.symbolic.instruments import DEFAULT_VOCABULARY_FILE

URMP_ORDER = ["vn", "va", "vc", "db", "fl", "ob", "cl", "sax", "bn", "tpt", "hn", "tbn", "tba"]
SLOT_ORDER = [
    "violin", "viola", "cello", "double bass", "flute", "oboe", "clarinet", "saxophone", "bassoon",
    "trumpet", "horn", "trombone", "tuba", "piano", "plucked strings", "voice",
]  # fmt: skip


@pytest.fixture(scope="module")
def vocab() -> InstrumentVocabulary:
    return InstrumentVocabulary.default()


def test_sixteen_slots_in_channel_order_with_urmp_codes(vocab):
    assert len(vocab) == 16
    assert list(vocab.names) == SLOT_ORDER
    assert [slot.index for slot in vocab] == list(range(16))
    assert [slot.urmp_code for slot in vocab.slots[:13]] == URMP_ORDER
    assert all(slot.urmp_code is None and not slot.is_urmp for slot in vocab.slots[13:])


def test_every_gm_program_maps_to_a_slot_with_a_documented_reason(vocab):
    for program in range(128):
        row = vocab.program_mapping(program)
        assert row.slot in vocab.slots
        assert vocab.slot_for_program(program) is row.slot
        assert row.reason in vocab.mapping_reasons and vocab.mapping_reasons[row.reason]
        # the table's GM names are aligned with pretty_midi's (catches an off-by-one row)
        assert row.gm_name == pretty_midi.program_to_instrument_name(program)


def test_each_slot_program_maps_back_to_its_slot(vocab):
    for slot in vocab:
        assert vocab.slot_for_program(slot.program) is slot
        assert vocab.program_mapping(slot.program).reason == "slot instrument"
    # and "slot instrument" is used for nothing else
    owners = [p for p in range(128) if vocab.program_mapping(p).reason == "slot instrument"]
    assert sorted(owners) == sorted(slot.program for slot in vocab)


def test_every_slot_is_reachable_from_some_gm_program(vocab):
    assert {vocab.slot_for_program(p).name for p in range(128)} == set(vocab.names)


@pytest.mark.parametrize(
    ("program", "slot_name"),
    [
        (43, "double bass"),  # Contrabass
        (32, "double bass"),  # Acoustic Bass
        (69, "oboe"),  # English Horn
        (72, "flute"),  # Piccolo
        (64, "saxophone"),  # Soprano Sax
        (67, "saxophone"),  # Baritone Sax
        (59, "trumpet"),  # Muted Trumpet
        (48, "violin"),  # String Ensemble 1
        (46, "plucked strings"),  # Orchestral Harp
        (19, "piano"),  # Church Organ
        (53, "voice"),  # Voice Oohs
        (80, "clarinet"),  # square lead: odd harmonics
        (110, "violin"),  # Fiddle
    ],
)
def test_known_programs_land_in_the_expected_slot(vocab, program, slot_name):
    assert vocab.slot_for_program(program).name == slot_name


def test_slot_ranges_are_consistent_with_their_note_names(vocab):
    data = _shipped_table()
    for slot, entry in zip(vocab, data["slots"]):
        low_name, high_name = entry["range"].split("-")
        assert pretty_midi.note_name_to_number(low_name) == slot.lowest_pitch, slot.name
        assert pretty_midi.note_name_to_number(high_name) == slot.highest_pitch, slot.name
        assert slot.contains_pitch(slot.lowest_pitch)
        assert not slot.contains_pitch(slot.highest_pitch + 1)
    assert vocab.by_name("violin").pitch_range == (55, 105)
    assert vocab.by_name("tuba").lowest_pitch < vocab.by_name("trombone").lowest_pitch


@pytest.mark.parametrize(
    ("name", "slot_name"),
    [
        ("Contrabass", "double bass"),
        ("bass", "double bass"),
        ("double_bass", "double bass"),
        ("DB", "double bass"),
        ("alto sax", "saxophone"),
        ("Alto-Saxophone", "saxophone"),
        ("tpt", "trumpet"),
        ("French  Horn", "horn"),
        ("harp", "plucked strings"),
        ("choir", "voice"),
        ("piano", "piano"),
    ],
)
def test_by_name_accepts_aliases_codes_and_spelling_variants(vocab, name, slot_name):
    assert vocab.by_name(name).name == slot_name
    assert vocab.index_of(name) == SLOT_ORDER.index(slot_name)


def test_unknown_name_lists_the_valid_names(vocab):
    with pytest.raises(ConfigError) as info:
        vocab.by_name("kazoo")
    message = str(info.value)
    assert "kazoo" in message
    assert all(name in message for name in SLOT_ORDER)


@pytest.mark.parametrize("program", [-1, 128, 40.0, "40", True, None])
def test_invalid_program_raises_config_error(vocab, program):
    with pytest.raises(ConfigError):
        vocab.slot_for_program(program)


def test_drum_track_is_excluded_with_a_warning_naming_it(vocab):
    kit = pretty_midi.Instrument(program=0, is_drum=True, name="Rock Kit")
    with pytest.warns(DrumTrackWarning, match="Rock Kit"):
        assert vocab.slot_for_instrument(kit, index=2) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        violin = pretty_midi.Instrument(program=40, name="Violin I")
        assert vocab.slot_for_instrument(violin).name == "violin"


def _shipped_table() -> dict:
    from importlib import resources

    resource = resources.files("orchestrion.symbolic").joinpath(DEFAULT_VOCABULARY_FILE)
    return json.loads(resource.read_text("utf-8"))


def test_a_table_missing_a_program_is_rejected_naming_the_file(tmp_path):
    data = _shipped_table()
    data["gm_programs"] = [row for row in data["gm_programs"] if row["program"] != 17]
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"vocab\.json.*17"):
        InstrumentVocabulary.from_json(path)


def test_an_alias_shared_by_two_slots_is_rejected(tmp_path):
    data = _shipped_table()
    data["slots"][1]["aliases"].append("fiddle")  # already a violin alias
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="fiddle"):
        InstrumentVocabulary.from_json(path)


def test_a_custom_vocabulary_round_trips_through_json(tmp_path):
    data = _shipped_table()
    data["slots"][15]["aliases"].append("kazoo")
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(data))
    custom = InstrumentVocabulary.from_json(path)
    assert custom.by_name("kazoo").name == "voice" and len(custom) == 16
