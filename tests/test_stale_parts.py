"""A killed build's half-written files are removed by the next build in the folder."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from orchestrion.data.build import BuildItem, ItemResult, run_build
from orchestrion.files import atomic_output

KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from orchestrion.files import atomic_output
    with atomic_output(sys.argv[1]) as tmp:
        tmp.write_bytes(b"half a note")
        os.kill(os.getpid(), signal.SIGKILL)
""")


def write_item(state, out_dir: Path, item: BuildItem) -> ItemResult:
    with atomic_output(out_dir / f"{item.key}.txt") as tmp:
        tmp.write_text(item.key)
    return ItemResult(item.key, [f"{item.key}.txt"])


def parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*.part*"))


def test_a_killed_writer_leaves_a_part_that_the_next_build_removes(tmp_path):
    out = tmp_path / "build"
    (out / "notes").mkdir(parents=True)
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(out / "notes" / "a.wav")], check=False)
    assert killed.returncode != 0
    assert len(parts(out)) == 1  # what a kill leaves behind
    with atomic_output(out / "busy.wav") as busy:  # a live writer's part (this process) stays
        busy.write_bytes(b"being written")
        elsewhere = out / ".c.1@another-machine.abc123.part.wav"  # another machine's: cannot tell
        elsewhere.write_bytes(b"")
        report = run_build(out, "test", [BuildItem("x", {})], write_item, {}, progress=False)
        assert report.built == 1 and (out / "x.txt").read_text() == "x"
        assert parts(out) == sorted([busy.name, elsewhere.name])
    assert parts(out) == [elsewhere.name]
