"""Typed configuration dataclasses that round-trip through JSON.

Every config in findiffusion is a frozen dataclass of plain values (or of
nested configs). :func:`to_dict` / :func:`from_dict` convert both ways and
reject unknown keys with a message that says which keys are allowed.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def to_dict(cfg: Any) -> dict[str, Any]:
    """Convert a (possibly nested) config dataclass into a JSON-ready dict."""
    if not dataclasses.is_dataclass(cfg):
        raise TypeError(f"expected a config dataclass, got {type(cfg).__name__}")
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out[f.name] = to_dict(v) if dataclasses.is_dataclass(v) else (list(v) if isinstance(v, tuple) else v)
    return out


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build config ``cls`` from a dict, recursing into nested config fields.

    Raises:
        ValueError: on keys that ``cls`` does not have.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(
            f"{cls.__name__}: unknown key(s) {unknown}; allowed keys are {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            kwargs[name] = from_dict(hint, value)  # type: ignore[arg-type]
        elif _is_tuple(hint) and isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def _is_tuple(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is tuple:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_tuple(a) for a in typing.get_args(hint))
    return False


def to_json(cfg: Any) -> str:
    """Serialise a config dataclass to a JSON string."""
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)


def from_json(cls: type[T], text: str) -> T:
    """Parse a JSON string into config ``cls``."""
    return from_dict(cls, json.loads(text))


def config_tag(cfg: Any) -> str:
    """A short, stable hash of a config (for cache directory names): equal configs, equal tags."""
    import hashlib

    return hashlib.sha256(to_json(cfg).encode()).hexdigest()[:8]
