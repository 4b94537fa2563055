"""YAML configuration files mapped 1:1 onto typed dataclasses.

Every YAML key must name a field of the dataclass (unknown keys are an error, so a typo
never silently falls back to a default); nested dataclasses map onto nested mappings. A
run writes the configuration it resolved next to its outputs with :func:`save_config`.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from seqvpr.io import atomic_path

__all__ = ["config_from_dict", "config_to_dict", "load_config", "save_config"]

T = TypeVar("T")


def config_from_dict(cls: type[T], mapping: dict[str, Any], source: str = "config") -> T:
    """Builds dataclass ``cls`` from a mapping, rejecting unknown keys.

    Raises:
        ValueError: naming ``source`` and the offending key.
    """
    if not isinstance(mapping, dict):
        raise ValueError(f"{source}: expected a mapping of {cls.__name__} fields, got {type(mapping).__name__}")
    fields = {field.name: field for field in dataclasses.fields(cls) if field.init}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown} for {cls.__name__}; valid keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in mapping.items():
        hint = hints.get(name)
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = config_from_dict(hint, value, f"{source}.{name}")
        values[name] = value
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: {error}") from error


def config_to_dict(config: Any) -> dict[str, Any]:
    """The dataclass as plain YAML-safe values (tensors become lists)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {field.name: plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
        if hasattr(value, "tolist"):
            return value.tolist()
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple | list):
            return [plain(item) for item in value]
        return value

    return plain(config)


def load_config(path: str | os.PathLike, cls: type[T]) -> T:
    """Reads a YAML file (``yaml.safe_load``) into dataclass ``cls``."""
    path = Path(path)
    try:
        mapping = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from error
    return config_from_dict(cls, mapping or {}, str(path))


def save_config(config: Any, path: str | os.PathLike) -> None:
    """Writes the dataclass to YAML atomically."""
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
