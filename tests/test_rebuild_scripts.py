"""The scripts that rebuild the shipped models: valid bash, and every command, option and
`--set` key they use exists today (a renamed option or a removed config field fails here,
not hours into a rebuild)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REBUILD = REPO_ROOT / "scripts" / "rebuild"
SCRIPTS = {
    "render-cpu.sh": "orchestrion.systems.organ.presets",
    "note-cpu.sh": "orchestrion.systems.sing.presets",
}
INVOCATION = re.compile(r'"\$ORCHESTRION" ([a-z]+) ([a-z]+)(.*)')
SET_KEY = re.compile(r"--set '?([A-Za-z_][A-Za-z0-9_]*)=")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def logical_lines(text: str) -> list[str]:
    """The script's lines with backslash continuations joined and bash arrays expanded."""
    joined = re.sub(r"\\\n\s*", " ", text)
    arrays = dict(re.findall(r"^(\w+)=\((.*?)\)", joined, flags=re.M | re.S))
    for name, body in arrays.items():
        joined = joined.replace(f'"${{{name}[@]}}"', " ".join(body.split()))
    return joined.splitlines()


def invocations(script: Path) -> list[tuple[str, str, str]]:
    """(command, subcommand, the rest of the line) for every orchestrion call in `script`."""
    found = []
    for line in logical_lines(script.read_text()):
        match = INVOCATION.search(line)
        if match:
            found.append(match.groups())
    return found


def config_fields(module_name: str) -> set[str]:
    """Field names of every dataclass defined in the system's presets module."""
    module = importlib.import_module(module_name)
    fields: set[str] = set()
    for _, value in inspect.getmembers(module, dataclasses.is_dataclass):
        if isinstance(value, type) and value.__module__ == module_name:
            fields |= {field.name for field in dataclasses.fields(value)}
    return fields


def help_options(command: str, subcommand: str) -> set[str]:
    """The options `orchestrion COMMAND SUBCOMMAND --help` lists (wide, so none is cut)."""
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "orchestrion.cli", command, subcommand, "--help"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 0, f"orchestrion {command} {subcommand}: {result.stderr}"
    return set(OPTION.findall(result.stdout))


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_rebuild_script_is_valid_bash(name):
    result = subprocess.run(["bash", "-n", str(REBUILD / name)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_rebuild_script_sets_only_config_fields(name):
    used = set(SET_KEY.findall((REBUILD / name).read_text()))
    assert used, "the script sets no config field: the parser missed them"
    unknown = used - config_fields(SCRIPTS[name])
    assert not unknown, f"{name} sets fields the config does not have: {sorted(unknown)}"


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_rebuild_script_uses_only_existing_commands_and_options(name):
    calls = invocations(REBUILD / name)
    assert {command for command, _, _ in calls} == {"data", "train"}, calls
    known: dict[tuple[str, str], set[str]] = {}
    for command, subcommand, rest in calls:
        if (command, subcommand) not in known:
            known[command, subcommand] = help_options(command, subcommand)
        unknown = set(OPTION.findall(rest)) - known[command, subcommand]
        assert not unknown, f"orchestrion {command} {subcommand} has no {sorted(unknown)}"


def test_render_rebuild_is_one_chain_ending_on_its_last_run():
    """render-cpu's chain: every run after the first starts from the run before it."""
    calls = [rest for command, _, rest in invocations(REBUILD / "render-cpu.sh") if command == "train"]
    outs = [re.search(r'--out "\$OUT/([\w-]+)"', rest).group(1) for rest in calls]
    inits = [re.search(r'--init-from "\$OUT/([\w-]+)/model"', rest) for rest in calls]
    assert inits[0] is None and len(set(outs)) == len(outs)
    assert [init.group(1) for init in inits[1:]] == outs[:-1]
    assert f'"$OUT/{outs[-1]}/model"' in (REBUILD / "render-cpu.sh").read_text().splitlines()[-1]
