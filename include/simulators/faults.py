"""Latency, rate limits and faults on demand, as pure ASGI middleware around a provider's app.

Configured per provider at start and at run time (``POST /_sim/faults/<provider>``):

* ``latency_ms``: added to every data request (async sleep: concurrent clients overlap);
* ``rate_limit``: ``[calls, seconds]`` fixed window with ``RateLimit-*`` headers and 429 past it (DealPOS
  documents 50 per 180 s; elsewhere it is configurable);
* ``rate``: the share of data requests that fail with one of ``kinds`` (seeded, so a run is repeatable):
  ``429`` (``Retry-After`` in seconds, or an HTTP-date when ``retry_after_http_date``), ``5xx`` (a burst of
  500/502/503), ``drop`` (the connection closes mid-body), ``slow`` (slower than the client's timeout),
  ``malformed`` (truncated JSON with 200), ``html`` (an HTML error page with 200);
* ``schedule``: an exact list of faults for the next requests (``"ok"`` for none), used by tests;
* ``drift``/``duplicates``/``token_ttl``: read by the provider apps (page drift, duplicates across pages,
  tokens that expire mid-run).
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("429", "5xx", "drop", "slow", "malformed", "html")


@dataclass
class Faults:
    latency_ms: float = 0.0
    rate: float = 0.0
    kinds: tuple[str, ...] = KINDS
    retry_after: int = 1
    retry_after_http_date: bool = False
    slow_seconds: float = 3.0
    burst: int = 2
    seed: int = 0
    schedule: list[str] = field(default_factory=list)
    rate_limit: tuple[int, float] | None = None
    drift: bool = False
    duplicates: bool = False
    token_ttl: float | None = None
    # counters (read by tests)
    injected: dict[str, int] = field(default_factory=dict)
    requests: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._burst_left = 0
        self._window_start = 0.0
        self._window_count = 0
        self.schedule = list(self.schedule)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return d

    def update(self, **kw: Any) -> None:
        with self._lock:
            for k, v in kw.items():
                if not hasattr(self, k) or k.startswith("_"):
                    raise ValueError(f"unknown fault setting {k!r}")
                if k == "kinds":
                    v = tuple(v)
                    bad = set(v) - set(KINDS)
                    if bad:
                        raise ValueError(f"unknown fault kinds {sorted(bad)}; known: {KINDS}")
                if k == "rate_limit" and v is not None:
                    v = (int(v[0]), float(v[1]))
                setattr(self, k, v)
            if "seed" in kw:
                self._rng = random.Random(self.seed)

    def next_fault(self) -> str | None:
        with self._lock:
            self.requests += 1
            if self.schedule:
                f = self.schedule.pop(0)
                f = None if f == "ok" else f
            elif self._burst_left > 0:
                self._burst_left -= 1
                f = "5xx"
            elif self.rate > 0 and self._rng.random() < self.rate:
                f = self._rng.choice(self.kinds)
                if f == "5xx":
                    self._burst_left = max(0, self.burst - 1)
            else:
                f = None
            if f:
                self.injected[f] = self.injected.get(f, 0) + 1
            return f

    def pick_5xx(self) -> int:
        with self._lock:
            return self._rng.choice((500, 502, 503))

    def take_rate_slot(self) -> tuple[bool, dict[str, str]]:
        """Fixed-window limiter (DealPOS: "50 requests across all endpoints per 180 seconds")."""
        if not self.rate_limit:
            return True, {}
        calls, period = self.rate_limit
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= period:
                self._window_start, self._window_count = now, 0
            ok = self._window_count < calls
            if ok:
                self._window_count += 1
            remaining = max(0, calls - self._window_count)
            reset = max(0, int(period - (now - self._window_start) + 0.999))
        headers = {"RateLimit-Limit": str(calls), "RateLimit-Remaining": str(remaining),
                   "RateLimit-Policy": f"{calls};w={int(period) if period >= 1 else period}",
                   "RateLimit-Reset": str(reset)}
        if not ok:
            self.injected["rate_limited"] = self.injected.get("rate_limited", 0) + 1
        return ok, headers


async def _send_simple(send, status: int, body: bytes, content_type: str, extra: dict[str, str]) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class FaultMiddleware:
    """Wraps one provider app; admin paths (``/_sim``) are never faulted."""

    def __init__(self, app, faults_for):
        self.app = app
        self.faults_for = faults_for  # callable returning the provider's current Faults

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        f: Faults = self.faults_for()
        if f.latency_ms:
            await asyncio.sleep(f.latency_ms / 1000.0)
        ok, rl_headers = f.take_rate_slot()
        if not ok:
            retry = str(int(f.rate_limit[1])) if f.rate_limit else "1"
            return await _send_simple(send, 429, b'{"Message":"API calls quota exceeded! maximum admitted '
                                      + f.rate_limit_text().encode() + b'"}', "application/json",
                                      {**rl_headers, "Retry-After": rl_headers.get("RateLimit-Reset", retry)})
        fault = f.next_fault()
        if fault == "429":
            ra = (email.utils.formatdate(time.time() + f.retry_after, usegmt=True)
                  if f.retry_after_http_date else str(f.retry_after))
            return await _send_simple(send, 429, b'{"detail":"Request was throttled."}', "application/json",
                                      {"Retry-After": ra})
        if fault == "5xx":
            status = f.pick_5xx()
            return await _send_simple(send, status, b"<html><body>Server Error</body></html>", "text/html", {})
        if fault == "html":
            return await _send_simple(send, 200, b"<!DOCTYPE html><html><head><title>Maintenance</title>"
                                      b"</head><body>We'll be back soon.</body></html>", "text/html", {})
        if fault == "slow":
            await asyncio.sleep(f.slow_seconds)
        if fault in ("drop", "malformed"):
            return await self._mangle(scope, receive, send, fault, rl_headers)
        if rl_headers:
            return await self.app(scope, receive, _with_headers(send, rl_headers))
        return await self.app(scope, receive, send)

    async def _mangle(self, scope, receive, send, fault: str, extra: dict[str, str]) -> None:
        start: dict = {}
        chunks: list[bytes] = []

        async def capture(message):
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        cut = body[: max(1, len(body) // 2)]
        if fault == "malformed":
            # A 200 whose JSON is cut off: a complete HTTP message with a broken payload.
            return await _send_simple(send, 200, cut, "application/json", extra)
        # A dropped connection: promise the whole body, send half, hang up.
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": start.get("status", 200), "headers": headers})
        await send({"type": "http.response.body", "body": cut, "more_body": True})
        raise ConnectionAbortedError("simulated dropped connection")


def _with_headers(send, extra: dict[str, str]):
    async def wrapped(message):
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = list(message.get("headers", [])) + [
                (k.lower().encode(), v.encode()) for k, v in extra.items()]
        await send(message)
    return wrapped


def _rate_limit_text(self: Faults) -> str:
    if not self.rate_limit:
        return ""
    return f"{self.rate_limit[0]} per {int(self.rate_limit[1])} seconds"


Faults.rate_limit_text = _rate_limit_text  # type: ignore[attr-defined]


class TokenBook:
    """Tokens a simulator has issued, with expiry (``token_ttl`` fault shortens their life)."""

    def __init__(self):
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()
        self._n = 0
        self.issued = 0

    def issue(self, prefix: str, ttl: float) -> str:
        with self._lock:
            self._n += 1
            self.issued += 1
            token = f"{prefix}-{self._n:06d}-{random.getrandbits(64):016x}"
            self._tokens[token] = time.monotonic() + ttl
            return token

    def check(self, token: str | None) -> str:
        """'ok', 'expired' or 'invalid'."""
        if not token:
            return "invalid"
        with self._lock:
            exp = self._tokens.get(token)
        if exp is None:
            return "invalid"
        return "ok" if time.monotonic() < exp else "expired"

    def expire_all(self) -> None:
        with self._lock:
            for k in self._tokens:
                self._tokens[k] = 0.0
