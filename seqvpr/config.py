"""YAML configuration files mapped 1:1 onto typed dataclasses, strictly.

Every YAML key must name a field of the dataclass (unknown keys are an error, so a typo
never silently falls back to a default); nested dataclasses map onto nested mappings.
Values must have the field's type: a string is not a bool, ``"25"`` is not an int, a bool
is not an int; an int is accepted where a float is expected, and a list where a tuple is.
A key given twice in one YAML mapping is an error. A run writes the configuration it
resolved next to its outputs with :func:`save_config`.

Errors are :class:`~seqvpr.errors.ConfigError` naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from seqvpr.errors import ConfigError
from seqvpr.io import atomic_path

__all__ = ["config_from_dict", "config_to_dict", "load_config", "load_yaml", "options_config", "save_config"]

T = TypeVar("T")


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | os.PathLike) -> Any:
    """Reads a YAML file safely, refusing duplicate keys.

    Raises:
        ConfigError: the file is missing or is not valid YAML (names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from error


class _Mismatch(Exception):
    """A value that does not fit a type hint (internal to :func:`_coerce`)."""


def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` checked against ``hint`` (and lists made tuples); raises _Mismatch."""
    if hint is Any:
        return value
    if hint is type(None):
        if value is None:
            return None
        raise _Mismatch
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for member in args:
            try:
                return _coerce(value, member, where)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is typing.Literal:
        if any(value == choice and type(value) is type(choice) for choice in args):
            return value
        raise _Mismatch
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise _Mismatch
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(item, args[0], where) for item in value)
        if args and len(args) != len(value):
            raise _Mismatch
        return tuple(_coerce(item, member, where) for item, member in zip(value, args or [Any] * len(value)))
    if origin is list:
        if not isinstance(value, list | tuple):
            raise _Mismatch
        return [_coerce(item, args[0] if args else Any, where) for item in value]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        return value
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise _Mismatch
        return config_from_dict(hint, value, where)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if hint is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if hint is Path:
        if isinstance(value, str | Path):
            return Path(value)
        raise _Mismatch
    if isinstance(hint, type):
        if isinstance(value, hint):
            return value
        # Array-typed fields (tensors) take a YAML list of numbers; the dataclass converts it.
        if hasattr(hint, "tolist") and isinstance(value, list):
            return value
        raise _Mismatch
    return value


def _field_default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def config_from_dict(cls: type[T], mapping: dict[str, Any], source: str = "config", base: T | None = None) -> T:
    """Builds dataclass ``cls`` from a mapping, checking keys and value types.

    Args:
        cls: the config dataclass.
        mapping: field name -> value (nested dataclasses as nested mappings).
        source: where the mapping came from (a file name), for error messages.
        base: the instance whose values the keys override (default: the class defaults).
            A nested mapping overrides the field's default instance, so ``gdtw: {lam: 0.2}``
            keeps the other options of the parent's default ``gdtw``.

    Returns:
        The dataclass instance.

    Raises:
        ConfigError: an unknown key, a value of the wrong type, or a value the dataclass
            rejects; names ``source`` and the field.
    """
    if not isinstance(mapping, dict):
        raise ConfigError(f"{source}: expected a mapping of {cls.__name__} fields, got {type(mapping).__name__}")
    fields = {field.name: field for field in dataclasses.fields(cls) if field.init}
    unknown = sorted(set(mapping) - set(fields), key=str)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} for {cls.__name__}; valid keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in mapping.items():
        hint = hints.get(name, Any)
        default = _field_default(fields[name]) if base is None else getattr(base, name)
        try:
            if dataclasses.is_dataclass(default) and isinstance(value, dict):
                values[name] = config_from_dict(type(default), value, f"{source}: {name}", default)
                continue
            values[name] = _coerce(value, hint, f"{source}: {name}")
        except _Mismatch:
            raise ConfigError(
                f"{source}: {name}: expected {_type_name(hint)}, got {value!r} ({type(value).__name__})"
            ) from None
    try:
        return dataclasses.replace(base, **values) if base is not None else cls(**values)
    except (TypeError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"{source}: {error}") from error


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
    """Reads a YAML file (safe loader, duplicate keys refused) into dataclass ``cls``.

    Raises:
        ConfigError: naming the file and the field at fault.
    """
    return config_from_dict(cls, load_yaml(path) or {}, str(path))


def options_config(cls: type[T], path: str | os.PathLike | None, options: dict[str, Any]) -> T:
    """Dataclass ``cls`` from an optional YAML file, overridden by the options that were given.

    This is how a command merges ``--config FILE`` with its flags: a flag left at None
    keeps the file's value (or the field's default), any other value wins. A mapping of
    options for a nested dataclass field is merged into the file's mapping the same way.

    Args:
        cls: the config dataclass.
        path: YAML file, or None for the defaults.
        options: field name -> flag value (None = not given), or -> mapping of those.

    Raises:
        ConfigError: naming the file (or ``command-line options``) and the field.
    """
    mapping = (load_yaml(path) or {}) if path is not None else {}
    if not isinstance(mapping, dict):
        raise ConfigError(f"{path}: expected a mapping of {cls.__name__} fields, got {type(mapping).__name__}")

    def merge(base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
        merged = dict(base)
        for name, value in given.items():
            if isinstance(value, dict) and isinstance(base.get(name, {}), dict):
                nested = merge(base.get(name, {}), value)
                if nested:
                    merged[name] = nested
            elif value is not None:
                merged[name] = value
        return merged

    source = str(path) if path is not None else "command-line options"
    return config_from_dict(cls, merge(mapping, options), source)


def save_config(config: Any, path: str | os.PathLike) -> None:
    """Writes the dataclass to YAML atomically."""
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
