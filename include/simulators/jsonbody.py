"""JSON bodies for the simulators' data endpoints, serialised once and cheaply.

A FastAPI endpoint that returns a dict has it walked by ``jsonable_encoder`` (slow: most of a page's CPU)
and turns ``Decimal`` into ``float``; an endpoint that returns a ``Response`` is sent as is. The data
endpoints therefore return :func:`json_response`: ``json.dumps`` straight into bytes, with the same text
as ``JSONResponse`` by default (UTF-8, no ASCII escaping, compact separators, NaN refused), or, for the
providers whose money is exact JSON *numbers*, with each ``Decimal`` written as the number text a
``decimal=`` function gives (``exact_number``: ``125000.00``; ``trimmed_number``: ``125000``/``33333.33``),
never through a float.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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
