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
that are already bytes, with the same text ``dumps`` gives for the whole object (:func:`splice` and
:func:`array` for envelopes of any key order). :class:`RecordKey` is a key that names a record's state
instead of the clock, so a record that did not change when ``as_of`` moved keeps its bytes;
:func:`pinned_world` and :func:`records` are the request side of it.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from decimal import Decimal
from functools import lru_cache
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any, NamedTuple

from fastapi.responses import Response

from simulators.world import World

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
    return splice({**head, key: array(items)}, ensure_ascii=ensure_ascii)


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


def array(items: Sequence[bytes]) -> bytes:
    """A JSON array of items that are already JSON bytes."""
    return b"[" + b",".join(items) + b"]"


def splice(payload: dict[str, Any], *, decimal: Callable[[Decimal], str] | None = None,
           ensure_ascii: bool = False, allow_nan: bool = False) -> bytes:
    """``dumps(payload)`` (same options) where each top-level value that is ``bytes`` is already JSON and is
    written as is: an envelope around memoised records in any key order (``{"Data": array(...), "Meta":
    ...}``), or an id -> record map whose values all are bytes. ``bytes`` is never a JSON value, so a
    payload cannot mean anything else; keys are written as ``dumps`` writes them."""
    key = encode_basestring_ascii if ensure_ascii else encode_basestring
    return b"{" + b",".join(
        key(k).encode() + b":" + (v if isinstance(v, bytes) else dumps(
            v, decimal=decimal, ensure_ascii=ensure_ascii, allow_nan=allow_nan))
        for k, v in payload.items()) + b"}"


class RecordKey(NamedTuple):
    """A :class:`BytesMemo` key that survives a move of the clock: the record's bytes depend on these four
    parts only, never on ``as_of`` itself.

    ``render``: the function that builds the record; ``config``: the world config fields it reads (e.g.
    seed and lines per invoice; not scale or per_day, which decide which records exist, not how one looks);
    ``ident``: which record (e.g. (day, index)); ``state``: everything the rendering reads of ``as_of``
    (e.g. (status, updated, paid_at)), cheap to compute beside the facts. A daily run then renders only
    the records whose state changed since the day before (and the new ones). Parts that compare equal
    must render equal: no ``Decimal`` whose text keeps its exponent (``exact_number``: 1.0 == 1.00)."""

    render: Callable[..., Any]
    config: Hashable
    ident: Hashable
    state: Hashable


def pinned_world(world: World, memo: BytesMemo) -> tuple[World, BytesMemo | None]:
    """This request's world, and the memo to serve its records from (None: render every record).

    The world is a copy of the live config with ``as_of`` pinned, so that a ``POST /_sim/config`` in the
    middle of a request cannot make it compute a record's state under one clock or config and render it
    under another. The memo is used only when ``as_of`` is fixed (the benchmarks and replays that read one
    world again and again; on the real clock nothing is kept, as in Akinon) and has room (``max_bytes`` > 0)."""
    live = world.config
    fixed = live.as_of
    config = dataclasses.replace(live, as_of=fixed if fixed is not None else live.now(),
                                 per_day=dict(live.per_day))
    return World(config), memo if fixed is not None and memo.max_bytes > 0 else None


def records(memo: BytesMemo | None, keys: Sequence[Hashable], make: Callable[[Any], bytes]) -> list[bytes]:
    """``make(key)`` for each key, in order: through ``memo`` (which keeps what it makes) when there is one."""
    return memo.get_many(keys, make) if memo is not None else [make(k) for k in keys]
