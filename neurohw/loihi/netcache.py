"""A small cache keyed by the *content* of a :class:`~neurohw.loihi.network.LoihiNetwork`.

:func:`simulate` at batch 1 on a 784-512-10 net spent about half its time re-validating the
network and re-checking its prepared weights. :class:`NetCache` remembers what was derived from
a network (its validation, prepared synapse groups) and hands it back only while the network is
unchanged: same field values everywhere (layers, neurons, synapse groups, shortcuts), and for
every large array the same array object with the same content (one comparison pass against a
copy taken when the entry was made, so in-place edits are seen).

A network holding something the fingerprint does not understand (an object array, a custom
type) is simply not cached.
"""
from __future__ import annotations

import dataclasses
import weakref
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

#: Arrays with at most this many elements are part of the key by value; larger ones by
#: identity plus a content check on every lookup.
SMALL_ARRAY = 4096


class Uncacheable(Exception):
    """The network holds a value the fingerprint cannot follow."""


def fingerprint(obj: Any, big: list[np.ndarray]) -> tuple:
    """A hashable key of ``obj``'s content; large arrays are keyed by identity, dtype, shape and
    strides and appended to ``big`` (their content must be checked separately)."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return (type(obj).__name__, obj)
    if isinstance(obj, np.generic):
        if obj.dtype.kind not in "biuf":
            raise Uncacheable(type(obj).__name__)
        return ("np", obj.dtype.str, obj.item())
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise Uncacheable(f"array of dtype {obj.dtype}")
        if obj.size <= SMALL_ARRAY:
            return ("a", obj.dtype.str, obj.shape, obj.tobytes())
        big.append(obj)
        return ("A", id(obj), obj.dtype.str, obj.shape, obj.strides)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        cls = type(obj)
        return (cls.__module__, cls.__qualname__,
                tuple(fingerprint(getattr(obj, f.name), big) for f in dataclasses.fields(obj)))
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(fingerprint(o, big) for o in obj))
    raise Uncacheable(type(obj).__name__)


class NetCache:
    """At most ``maxsize`` values derived from networks, newest kept.

    ``get(net, extra, build)`` returns ``build()``'s value for a network whose content equals
    that of the network it was built for (``extra``: any hashable context, e.g. the device),
    building and remembering it otherwise.
    """

    def __init__(self, maxsize: int = 16):
        self.maxsize = maxsize
        self._entries: "OrderedDict[tuple, tuple[list, Any]]" = OrderedDict()

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, net: Any, extra: tuple, build: Callable[[], Any]) -> Any:
        big: list[np.ndarray] = []
        try:
            key = (fingerprint(net, big), extra)
        except Uncacheable:
            return build()
        hit = self._entries.get(key)
        if hit is not None:
            checks, value = hit
            if all(ref() is a and np.array_equal(a, copy) for (ref, copy), a in zip(checks, big)):
                self._entries.move_to_end(key)
                return value
            del self._entries[key]
        value = build()  # may raise: nothing is remembered then
        try:
            checks = [(weakref.ref(a), np.array(a, copy=True)) for a in big]
        except TypeError:  # an array type without weak references: not cached
            return value
        self._entries[key] = (checks, value)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)
        return value
