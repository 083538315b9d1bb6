"""Dataclasses to JSON-able plain data and back, driven by their type hints.

The conversation keeps its per-chat state in dataclasses; to survive a restart the state is
written to SQLite as JSON. Rather than a hand-written format that every new field of the
state would have to join, :func:`to_plain` and :func:`from_plain` walk the dataclass fields
by their annotations, so a field added to the state (a set of slugs, a preference string, a
nested dataclass) is stored and read back with no more work.

Supported: ``None``, ``bool``, ``int``, ``float``, ``str``, ``Literal``, unions (``X | None``),
``list``, ``tuple`` (``tuple[X, ...]`` and fixed), ``set``, ``frozenset``, ``dict`` and
``OrderedDict`` (stored as ``[key, value]`` pairs, so keys may be ints and the order is
kept), nested dataclasses, and any type given a codec in ``codecs``: ``{type: (encode,
decode)}``, ``encode`` returning plain data (a type whose plain form is not its fields, such
as a diagnosis that is rebuilt from its answers). Reading is
forgiving of change: unknown keys are ignored, missing fields take their defaults. Anything
else that does not fit the hints raises :class:`PlainDataError`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections import OrderedDict
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, Literal, Union

Codecs = Mapping[type, tuple[Callable[[Any], Any], Callable[[Any], Any]]]
_NONE = type(None)


class PlainDataError(ValueError):
    """The stored data does not fit the type it is read as."""


def to_plain(value: Any, codecs: Codecs | None = None) -> Any:
    """``value`` as JSON-able data (dicts with string keys, lists, numbers, strings)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if codecs:
        codec = codecs.get(type(value))
        if codec is not None:
            return codec[0](value)  # the codec's encoder gives plain data itself
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name), codecs) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return [[to_plain(k, codecs), to_plain(v, codecs)] for k, v in value.items()]
    if isinstance(value, set | frozenset):
        items = [to_plain(v, codecs) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, list | tuple):
        return [to_plain(v, codecs) for v in value]
    raise PlainDataError(f"cannot store a {type(value).__name__}")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_plain(tp: Any, data: Any, codecs: Codecs | None = None) -> Any:
    """Read ``data`` (from :func:`to_plain`) back as a value of type ``tp``."""
    if codecs and isinstance(tp, type) and tp in codecs:
        return codecs[tp][1](data)
    if tp is Any:
        return data
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union or origin is types.UnionType:
        if data is None and _NONE in args:
            return None
        for option in args:
            if option is _NONE:
                continue
            try:
                return from_plain(option, data, codecs)
            except (PlainDataError, TypeError, ValueError):
                continue
        raise PlainDataError(f"{data!r} fits none of {tp}")
    if origin is Literal:
        if data in args:
            return data
        raise PlainDataError(f"{data!r} is not one of {args}")
    if tp is _NONE or tp is None:
        if data is None:
            return None
        raise PlainDataError(f"{data!r} is not None")
    if tp in (bool, str):
        if isinstance(data, tp):
            return data
        raise PlainDataError(f"{data!r} is not a {tp.__name__}")
    if tp is int:
        if isinstance(data, int) and not isinstance(data, bool):
            return data
        raise PlainDataError(f"{data!r} is not an int")
    if tp is float:
        if isinstance(data, int | float) and not isinstance(data, bool):
            return float(data)
        raise PlainDataError(f"{data!r} is not a number")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp, data, codecs)
    container = origin or tp
    if container in (list, tuple, set, frozenset):
        if not isinstance(data, list):
            raise PlainDataError(f"{data!r} is not a list")
        if container is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(data):
                raise PlainDataError(f"{data!r} has not {len(args)} items")
            return tuple(from_plain(t, v, codecs) for t, v in zip(args, data, strict=True))
        item = args[0] if args else Any
        return container(from_plain(item, v, codecs) for v in data)
    if container in (dict, OrderedDict):
        key_tp, value_tp = args if args else (Any, Any)
        pairs = data.items() if isinstance(data, dict) else data
        try:
            return container(
                (from_plain(key_tp, k, codecs), from_plain(value_tp, v, codecs)) for k, v in pairs
            )
        except (TypeError, ValueError) as exc:
            if isinstance(exc, PlainDataError):
                raise
            raise PlainDataError(f"{data!r} is not a list of pairs") from None
    raise PlainDataError(f"cannot read a {tp}")


def _dataclass(cls: type, data: Any, codecs: Codecs | None) -> Any:
    if not isinstance(data, dict):
        raise PlainDataError(f"{data!r} is not an object")
    hints = _hints(cls)
    given: dict[str, Any] = {}
    later: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue  # a field added since: its default
        value = from_plain(hints[f.name], data[f.name], codecs)
        (given if f.init else later)[f.name] = value
    obj = cls(**given)
    for name, value in later.items():
        setattr(obj, name, value)
    return obj
