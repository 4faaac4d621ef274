"""What every system's presets share: field-name checks and picking a preset with overrides."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from orchestrion.errors import ConfigError

C = TypeVar("C")


def check_field_names(config_class: type, values: Mapping[str, Any], label: str) -> None:
    """Raise ConfigError naming any key of `values` that is not a field of `config_class`."""
    known = [f.name for f in dataclasses.fields(config_class)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown {label} setting(s): the config has no field(s) {', '.join(unknown)}; "
            f"valid settings are {', '.join(known)}"
        )


def pick_preset(presets: Mapping[str, C], name: str, overrides: Mapping[str, Any], label: str) -> C:
    """The preset `name` with `overrides` applied (validated by the config's own checks)."""
    if name not in presets:
        raise ConfigError(f"unknown {label} preset {name!r}; available presets: {', '.join(presets)}")
    check_field_names(type(presets[name]), overrides, label)
    return dataclasses.replace(presets[name], **overrides)
