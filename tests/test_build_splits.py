"""Small builds: held-out pieces in valid and test, and counts that say what was built."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrion.data.build import BuildItem, ItemResult, run_build, write_json
from orchestrion.data.build_urmp import split_of_piece, split_position, write_splits
from orchestrion.data.commands import _summary
from orchestrion.files import atomic_output


def names_in(split: str, count: int, seed: int = 0) -> list[str]:
    """The first `count` names ``piece<i>`` that the hash rule puts in `split`."""
    found = []
    index = 0
    while len(found) < count:
        if split_of_piece(f"piece{index}", seed) == split:
            found.append(f"piece{index}")
        index += 1
    return found


def fake_build(out: Path, names: list[str], seed: int = 0) -> None:
    """Item records as a URMP build leaves them (the splits need nothing else)."""
    for number, name in enumerate(names, start=1):
        key = f"{number:02d}_{name}"
        write_json(out / ".build" / "items" / f"{key}.json", {
            "key": key, "files": [f"{key}_fl/AuMix_{key}_fl.wav"], "split": split_of_piece(name, seed),
            "extra": {"name": name, "piece_id": f"{key}_fl"}, "duration_s": 1.0, "checksums": {},
        })


def test_six_train_pieces_lend_one_to_test_and_one_to_valid(tmp_path):
    names = names_in("train", 6)
    fake_build(tmp_path, names)
    splits, note = write_splits(tmp_path)
    assert note == ""
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [4, 1, 1]
    assert json.loads((tmp_path / "splits.json").read_text()) == splits
    by_position = sorted(names, key=lambda n: split_position(n, 0))  # nearest the held-out range first
    assert splits["test"][0].endswith(by_position[0] + "_fl") and splits["valid"][0].endswith(by_position[1] + "_fl")


def test_pieces_the_rule_holds_out_stay_where_they_are(tmp_path):
    names = names_in("train", 4) + names_in("test", 1) + names_in("valid", 1)
    fake_build(tmp_path, names)
    splits, _ = write_splits(tmp_path)
    for split in ("valid", "test"):
        assert [p.split("_", 1)[1].removesuffix("_fl") for p in splits[split]] == names_in(split, 1)


def test_two_pieces_stay_in_train_and_the_note_says_why(tmp_path):
    fake_build(tmp_path, names_in("train", 2))
    splits, note = write_splits(tmp_path)
    assert len(splits["train"]) == 2 and not splits["valid"] and not splits["test"]
    assert "test and valid empty" in note and "only 2 pieces" in note and "3" in note


def test_a_zero_fraction_keeps_its_split_empty(tmp_path):
    fake_build(tmp_path, names_in("train", 5))
    splits, note = write_splits(tmp_path, valid_fraction=0.0)
    assert not splits["valid"] and len(splits["test"]) == 1 and note == ""


def write_unless_empty(state, out_dir: Path, item: BuildItem) -> ItemResult:
    if item.params["empty"]:
        return ItemResult(item.key, [], split="skipped", extra={"skipped": "empty"})
    with atomic_output(out_dir / f"{item.key}.txt") as tmp:
        tmp.write_text(item.key)
    return ItemResult(item.key, [f"{item.key}.txt"], split="train")


def test_a_left_out_piece_is_not_counted_as_built(tmp_path):
    items = [BuildItem(f"p{i}", {"empty": i == 2}) for i in range(4)]
    report = run_build(tmp_path, "test", items, write_unless_empty, {}, progress=False)
    assert (report.built, report.left_out, report.skipped) == (3, 1, 0)
    assert _summary(report).startswith(f"{tmp_path}: 3 built, 1 left out")
    again = run_build(tmp_path, "test", items, write_unless_empty, {}, progress=False)
    assert (again.built, again.left_out, again.skipped) == (0, 0, 4)
