"""The systems (render, note, ...) and what their packages share."""

from orchestrion.lazy import lazy_exports

__all__ = ["lazy_exports"]
