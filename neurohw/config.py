"""Check a JSON config against its dataclass — types and ranges — before any work.

:func:`check_fields` compares each value with the type of the field's default (``bool``,
``int``, ``float`` — ints accepted, finite only —, ``str``, ``tuple``/``list``) and with an
optional range or choice per field, and raises :class:`~neurohw.errors.UsageError` naming
the file and field: ``cfg.json: epochs: expected an integer, got 'two'``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

from neurohw.errors import UsageError

#: Ranges: (description, predicate).
COUNT = ("an integer >= 1", lambda v: v >= 1)
NONNEG = (">= 0", lambda v: v >= 0)
POSITIVE = ("> 0", lambda v: v > 0)
UNIT = ("in [0, 1]", lambda v: 0 <= v <= 1)
FRACTION = ("in (0, 1]", lambda v: 0 < v <= 1)

Range = tuple[str, Callable[[Any], bool]]


def _type_error(where: str, name: str, want: str, value: Any) -> UsageError:
    return UsageError(f"{where}: {name}", f"expected {want}, got {value!r}")


def check_value(where: str, name: str, value: Any, default: Any) -> None:
    """Raise if ``value`` is not of the kind of ``default`` (``None`` default: anything)."""
    if default is None:
        return
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise _type_error(where, name, "true or false", value)
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(where, name, "an integer", value)
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(where, name, "a number", value)
        if not math.isfinite(value):
            raise _type_error(where, name, "a finite number", value)
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise _type_error(where, name, "a string", value)
    elif isinstance(default, (tuple, list)):
        if not isinstance(value, (tuple, list)):
            raise _type_error(where, name, "a list", value)


def check_fields(cls, data: Mapping[str, Any], where: str, *, ranges: Mapping[str, Range] | None = None,
                 choices: Mapping[str, tuple] | None = None, item_ranges: Mapping[str, Range] | None = None) -> None:
    """Validate ``data`` (a dict of field values) for dataclass ``cls``; unknown fields are refused.

    ``ranges``: field → :data:`COUNT`-style range; ``choices``: field → allowed values;
    ``item_ranges``: list field → a range every item must satisfy (items must be integers).
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UsageError(where, f"unknown field(s) {unknown}; known: {sorted(fields)}")
    for name, value in data.items():
        f = fields[name]
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
        check_value(where, name, value, default)
        if choices and name in choices and value not in choices[name]:
            raise UsageError(f"{where}: {name}", f"must be one of {list(choices[name])}, got {value!r}")
        if ranges and name in ranges:
            desc, ok = ranges[name]
            if not ok(value):
                raise UsageError(f"{where}: {name}", f"must be {desc}, got {value!r}")
        if item_ranges and name in item_ranges:
            desc, ok = item_ranges[name]
            for item in value:
                if isinstance(item, bool) or not isinstance(item, int) or not ok(item):
                    raise UsageError(f"{where}: {name}", f"every item must be {desc}, got {list(value)!r}")
