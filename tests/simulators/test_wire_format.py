"""The simulators' fast serialisation writes exactly what the slower code it replaced wrote.

``simulators.jsonbody`` must give ``JSONResponse``'s bytes (or the exact decimal number text of the
providers whose money is JSON numbers), and the ``isoformat``-based timestamp helpers must give the
strings of the ``strftime`` formats they replaced.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from fastapi.responses import JSONResponse

from simulators import akinon, dealpos, idh, redex, shopwave
from simulators.jsonbody import dumps, exact_number, json_response, trimmed_number

UTC = dt.timezone.utc

PAYLOAD = {"b": 1, "a": [None, True, 1.5, -0.25, 10**20], "ç": "İptal Edildi — ok", "nested": {"x": ["y", {}]},
           "t": (1, 2)}


def test_default_is_jsonresponse_bytes():
    assert dumps(PAYLOAD) == JSONResponse(PAYLOAD).body
    r, j = json_response(PAYLOAD, 201, {"X-A": "1"}), JSONResponse(PAYLOAD, 201, {"X-A": "1"})
    assert (r.body, r.status_code, r.headers.items()) == (j.body, j.status_code, j.headers.items())


def test_decimal_without_a_format_is_an_error():
    with pytest.raises(TypeError):
        dumps({"a": Decimal("1.5")})


def _old_redex(payload):  # the regex-based serialiser REDEX had
    def default(o):
        if isinstance(o, Decimal):
            return f"@@num:{format(o, 'f')}@@"
        raise TypeError(type(o).__name__)
    return re.sub(r'"@@num:([-+0-9.Ee]+)@@"', r"\1",
                  json.dumps(payload, default=default, separators=(",", ":"))).encode()


def _old_dealpos(payload):  # the tree-walking serialiser DealPOS had
    def enc(x):
        if isinstance(x, Decimal):
            return "\x00num:" + (str(int(x)) if x == x.to_integral_value() else format(x.normalize(), "f"))
        if isinstance(x, dict):
            return {k: enc(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [enc(v) for v in x]
        return x
    return re.sub(r'"\\u0000num:(-?[0-9.]+)"', r"\1", json.dumps(enc(payload), separators=(",", ":"))).encode()


DECIMALS = [Decimal(s) for s in ("0", "0.00", "-0.50", "1.0", "1.00", "125000.00", "33333.330", "3.000000",
                                 "0.0237", "1E+2", "-4202866.67", "100", "1699.0208")]


def test_exact_number_keeps_every_digit():
    payload = {"v": DECIMALS, "s": "Ünïcode", "n": None, "i": 7}
    got = dumps(payload, decimal=exact_number, ensure_ascii=True, allow_nan=True)
    assert got == _old_redex(payload)
    assert b'"v":[0,0.00,-0.50,1.0,1.00,125000.00,33333.330,3.000000,0.0237,100,' in got
    # the same values again, in another order: no memo may mix 1.0 and 1.00
    assert dumps(DECIMALS[::-1], decimal=exact_number) == _old_redex(DECIMALS[::-1])


def test_trimmed_number_is_dealpos_text():
    payload = [{"Amount": d, "Name": "Kırmızı"} for d in DECIMALS * 3]
    got = dumps(payload, decimal=trimmed_number, ensure_ascii=True, allow_nan=True)
    assert got == _old_dealpos(payload)
    assert json.loads(got)[5]["Amount"] == 125000 and b"33333.33," in got


def _timestamps(n=300):
    r = random.Random(5)
    base = dt.datetime(2024, 1, 1, tzinfo=UTC)
    out = [base, base.replace(microsecond=999_999), base.replace(microsecond=10_000)]
    out += [base + dt.timedelta(seconds=r.randint(0, 3 * 365 * 86400), microseconds=r.randint(0, 999_999))
            for _ in range(n)]
    jakarta = ZoneInfo("Asia/Jakarta")
    return out + [t.astimezone(jakarta) for t in out[:50]]


def test_timestamp_helpers_match_strftime():
    for ts in _timestamps():
        u = ts.astimezone(UTC)
        assert akinon._iso(ts) == u.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert shopwave._iso(ts) == u.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
        for z in (True, False):
            assert redex._ts7(ts, z) == (f"{u:%Y-%m-%dT%H:%M:%S}.{u.microsecond:06d}{u.microsecond % 7}"
                                         + ("Z" if z else ""))
        for digits in (2, 3):
            assert redex._ts_short(ts, digits) == f"{u:%Y-%m-%dT%H:%M:%S}.{u.microsecond:06d}"[: 20 + digits]
        loc = ts.astimezone(dealpos.LOCAL)
        cs = loc.microsecond // 10_000
        assert dealpos.local_text(ts) == loc.strftime("%Y-%m-%dT%H:%M:%S") + (f".{cs:02d}".rstrip("0") if cs else "")
        d = ts.date()
        assert idh._dmy(d) == d.strftime("%d-%m-%Y")
        assert dealpos.number_of(d, 7) == f"{d:%y.%m}.{d.day:02d}007"


def test_available_variants_is_the_catalogue_filter():
    for seed in (7, 11):
        cat = dealpos.catalogue(seed)
        times = [p.created for p in cat]
        probes = _timestamps(200) + times + [t - dt.timedelta(microseconds=1) for t in times]
        for t in probes:
            assert list(dealpos.available_variants(seed, t)) == [v for p in cat for v in p.variants
                                                                  if p.created <= t]
