"""JSON bodies for the simulators' data endpoints, serialised once and cheaply.

A FastAPI endpoint that returns a dict has it walked by ``jsonable_encoder`` (slow: most of a page's CPU)
and turns ``Decimal`` into ``float``; an endpoint that returns a ``Response`` is sent as is. The data
endpoints therefore return :func:`json_response`: ``json.dumps`` straight into bytes, with the same text
as ``JSONResponse`` by default (UTF-8, no ASCII escaping, compact separators, NaN refused), or, for the
providers whose money is exact JSON *numbers*, with each ``Decimal`` written as the number text a
``decimal=`` function gives (``exact_number``: ``125000.00``; ``trimmed_number``: ``125000``/``33333.33``),
never through a float.

Two helpers let a simulator serve a record it has served before without rendering it again:
:class:`BytesMemo` keeps each record's JSON bytes under a key that names everything its rendering depends
on (LRU, bounded by total bytes, thread safe), and :func:`with_array` writes an envelope around records
that are already bytes, with the same text ``dumps`` gives for the whole object.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any

from fastapi.responses import Response

# A Decimal is first written as the JSON string "\u0000num:<text>\u0000" (json escapes the NUL byte the
# same way whatever ensure_ascii says), then the quotes and markers around <text> are cut out: two
# str.replace calls over the whole body instead of a Python call per number.
_OPEN, _CLOSE = "\x00num:", "\x00"
_OPEN_JSON, _CLOSE_JSON = '"\\u0000num:', '\\u0000"'


def exact_number(d: Decimal) -> str:
    """The decimal's digits as they are: ``Decimal("3.000000")`` -> ``3.000000`` (REDEX)."""
    return format(d, "f")


def trimmed_number(d: Decimal) -> str:
    """Integral values without a fraction, others in their shortest exact form (DealPOS):
    ``Decimal("125000.00")`` -> ``125000``, ``Decimal("33333.330")`` -> ``33333.33``."""
    return str(int(d)) if d == d.to_integral_value() else format(d.normalize(), "f")


#: Formatters whose text depends on the value only (equal decimals, e.g. 1.0 and 1.00, give the same
#: text): their results can be memoised by value. ``exact_number`` keeps the exponent, so it cannot.
BY_VALUE = {trimmed_number}


def _decimal_default(decimal: Callable[[Decimal], str]) -> Callable[[Any], Any]:
    def default(o: Any) -> Any:
        if isinstance(o, Decimal):
            return _OPEN + decimal(o) + _CLOSE
        raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")
    # json calls ``default`` for every Decimal: amounts repeat a lot (prices, zeros), so a memo by
    # value saves most of the Python work. A TypeError is raised, never cached.
    return lru_cache(maxsize=65_536, typed=True)(default) if decimal in BY_VALUE else default


_DEFAULTS: dict[Callable[[Decimal], str], Callable[[Any], Any]] = {}


def dumps(payload: Any, *, decimal: Callable[[Decimal], str] | None = None, ensure_ascii: bool = False,
          allow_nan: bool = False) -> bytes:
    """``payload`` as compact JSON bytes (the defaults give exactly what ``JSONResponse`` renders).

    ``decimal``: how a ``Decimal`` is written as a JSON number (None: a ``Decimal`` is an error)."""
    default = None
    if decimal is not None:
        default = _DEFAULTS.get(decimal) or _DEFAULTS.setdefault(decimal, _decimal_default(decimal))
    text = json.dumps(payload, ensure_ascii=ensure_ascii, allow_nan=allow_nan, separators=(",", ":"),
                      check_circular=False, default=default)
    if default is not None and _OPEN_JSON in text:
        text = text.replace(_OPEN_JSON, "").replace(_CLOSE_JSON, "")
    return text.encode("utf-8")


def json_response(payload: Any, status_code: int = 200, headers: dict[str, str] | None = None, *,
                  media_type: str = "application/json", decimal: Callable[[Decimal], str] | None = None,
                  ensure_ascii: bool = False, allow_nan: bool = False) -> Response:
    """A prebuilt JSON ``Response`` (FastAPI sends it as is: no ``jsonable_encoder``)."""
    return Response(dumps(payload, decimal=decimal, ensure_ascii=ensure_ascii, allow_nan=allow_nan),
                    status_code=status_code, headers=headers, media_type=media_type)


def with_array(head: dict[str, Any], key: str, items: Sequence[bytes], *, ensure_ascii: bool = False) -> bytes:
    """``dumps({**head, key: [...]})`` where the array's items are already JSON bytes (``dumps`` of each
    one, same options): ``head``'s keys in order, then ``key`` last. ``key`` must not be in ``head``."""
    prefix = dumps(head, ensure_ascii=ensure_ascii)[:-1]  # cut the closing brace
    return b"".join((prefix, b"," if len(prefix) > 1 else b"", dumps(key, ensure_ascii=ensure_ascii), b":[",
                     b",".join(items), b"]}"))


#: Default bound of a :class:`BytesMemo` (bytes, entry overheads included).
MEMO_BYTES = 256 * 1024 * 1024


class BytesMemo:
    """Rendered JSON bytes by key, LRU, bounded by total size; thread safe (sync FastAPI endpoints run in
    a thread pool).

    The key must name everything the bytes depend on (e.g. the render function, the world's config,
    ``as_of``, the record's (day, index)): the memo never invalidates, it only forgets the least recently
    used entries once ``size`` would pass ``max_bytes``. ``size`` counts each value's length plus
    ``ENTRY_OVERHEAD`` (a rough price of the key, the dict slot and the bytes object). A value that
    alone is bigger than the bound is returned but not kept; a scan bigger than the bound just misses.
    Values are rendered outside the lock: two threads missing the same key both render it (same bytes).
    """

    ENTRY_OVERHEAD = 200

    def __init__(self, max_bytes: int = MEMO_BYTES):
        self.max_bytes = max_bytes
        self._d: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, key: Hashable) -> bool:  # no LRU touch
        return key in self._d

    def keys(self) -> list[Hashable]:
        """The keys, least recently used first."""
        with self._lock:
            return list(self._d)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()
            self._size = 0

    def get(self, key: Hashable, render: Callable[[], bytes]) -> bytes:
        """The bytes under ``key``, rendered by ``render()`` (and kept) on a miss."""
        return self.get_many((key,), lambda _k: render())[0]

    def get_many(self, keys: Sequence[Hashable], render: Callable[[Hashable], bytes]) -> list[bytes]:
        """The bytes under each key, in order; ``render(key)`` makes (and the memo keeps) the missing ones."""
        out: list[bytes | None] = []
        missing: dict[Hashable, list[int]] = {}
        d = self._d
        with self._lock:
            for n, k in enumerate(keys):
                v = d.get(k)
                if v is None:
                    missing.setdefault(k, []).append(n)
                else:
                    d.move_to_end(k)
                out.append(v)
            self.hits += len(out) - sum(map(len, missing.values()))
            self.misses += len(missing)
        if not missing:
            return out  # type: ignore[return-value]
        made = [(k, render(k)) for k in missing]
        with self._lock:
            for k, v in made:
                for n in missing[k]:
                    out[n] = v
                self._put(k, v)
        return out  # type: ignore[return-value]

    def _put(self, key: Hashable, value: bytes) -> None:
        cost = len(value) + self.ENTRY_OVERHEAD
        if cost > self.max_bytes:
            return
        d = self._d
        old = d.pop(key, None)
        if old is not None:
            self._size -= len(old) + self.ENTRY_OVERHEAD
        d[key] = value
        self._size += cost
        while self._size > self.max_bytes:
            _, gone = d.popitem(last=False)
            self._size -= len(gone) + self.ENTRY_OVERHEAD
