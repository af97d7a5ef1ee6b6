"""One HTTP client for every provider: auth, retries, rate limiting, exact JSON.

Retry policy (one named predicate, as in Airflow's HttpHook): connection errors, timeouts, truncated or
malformed bodies, HTML error pages, 429 and 5xx are retried with capped exponential backoff and full
jitter, honouring ``Retry-After`` (seconds or HTTP-date) and ``RateLimit-Reset``; a 401 triggers one
token refresh and one retry; every other 4xx fails at once. Error messages name the connection, the
method and path, never a credential.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import msgspec
import requests
import urllib3

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class ApiError(RuntimeError):
    """A request that failed for good (after retries, or a non-retryable status or body error)."""

    def __init__(self, message: str, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class AuthError(ApiError):
    """Credentials were refused; the message names the connection, never the secret."""


class BadResponse(ApiError):
    """A 2xx response whose body is not the JSON we expect (HTML page, truncated or malformed JSON)."""

    def __init__(self, message: str, body: bytes = b""):
        super().__init__(message, status=200, retryable=True)
        self.body = body


@dataclass
class RetryPolicy:
    max_attempts: int = 8
    base_delay: float = 0.25
    max_delay: float = 30.0
    jitter: bool = True
    connect_timeout: float = 10.0
    read_timeout: float = 30.0

    def backoff(self, attempt: int) -> float:
        delay = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(delay / 2, delay) if self.jitter else delay


class RateLimiter:
    """A sliding-log limiter: at most ``max_calls`` in any ``period`` seconds (thread-safe).

    A sliding log never exceeds a provider's fixed window either, and lets a long extraction use the
    whole quota of every window (DealPOS: 50 requests per 180 s).
    """

    def __init__(self, max_calls: int, period: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if max_calls < 1 or period <= 0:
            raise ValueError("rate limit needs max_calls >= 1 and period > 0")
        self.max_calls, self.period = max_calls, period
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()
        self._clock, self._sleep = clock, sleep
        self.waited = 0.0

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                while self._calls and now - self._calls[0] >= self.period:
                    self._calls.popleft()
                if len(self._calls) < self.max_calls:
                    self._calls.append(now)
                    return
                wait = self.period - (now - self._calls[0]) + 0.001
            self.waited += wait
            self._sleep(wait)

    def pause(self, seconds: float) -> None:
        """Block new calls for ``seconds`` (the server said so: Retry-After on a 429)."""
        with self._lock:
            until = self._clock() + seconds
            # Fill the log so that nothing is allowed before `until`.
            self._calls = deque([until - self.period] * self.max_calls)


class Auth:
    """Auth strategy: sets headers; may refresh a token. Subclasses live in engine/auth.py."""

    can_refresh = False

    def headers(self, client: HttpClient) -> dict[str, str]:
        return {}

    def expire(self, sent: Mapping[str, str]) -> None:  # pragma: no cover - trivial
        """The token in the headers ``sent`` was refused (401): the next ``headers()`` takes a new one."""
        return None


@dataclass
class Stats:
    requests: int = 0
    retries: int = 0
    refreshes: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    retry_reasons: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, status: int | None, nbytes: int = 0) -> None:
        with self.lock:
            self.requests += 1
            self.bytes += nbytes
            if status is not None:
                self.statuses[status] = self.statuses.get(status, 0) + 1

    def retried(self, reason: str) -> None:
        with self.lock:
            self.retries += 1
            self.retry_reasons[reason] = self.retry_reasons.get(reason, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "retries": self.retries, "token_refreshes": self.refreshes,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "retry_reasons": dict(sorted(self.retry_reasons.items())), "bytes": self.bytes}


_DECODER = msgspec.json.Decoder(float_hook=Decimal)


#: sent with every request besides the caller's (what requests sent by default)
_DEFAULT_HEADERS = {"User-Agent": requests.utils.default_user_agent(), "Accept-Encoding": "gzip, deflate",
                    "Accept": "*/*"}
#: redirects followed (as requests does, up to 30); no retry of urllib3's own: request_json retries
_REDIRECTS = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=30,
                           raise_on_redirect=True, respect_retry_after_header=False)


class Response:
    """An answer, with the names of ``requests.Response`` that request_json and its callers read."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes):
        self.status_code = status_code
        self.headers = headers  # urllib3's HTTPHeaderDict: names are case-insensitive
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


def _transport_error(exc: BaseException) -> requests.RequestException:
    """urllib3's error as the requests exception request_json retries (as requests' adapter maps it)."""
    e = urllib3.exceptions
    if isinstance(exc, e.ConnectTimeoutError) and not isinstance(exc, e.NewConnectionError):
        return requests.exceptions.ConnectTimeout(exc)  # (a refused connection is one of urllib3's subclasses)
    if isinstance(exc, e.ReadTimeoutError):
        return requests.exceptions.ReadTimeout(exc)
    if isinstance(exc, e.SSLError):
        return requests.exceptions.SSLError(exc)
    if isinstance(exc, e.ProxyError):
        return requests.exceptions.ProxyError(exc)
    return requests.exceptions.ConnectionError(exc)


def parse_json(body: bytes) -> Any:
    """Parse a JSON body exactly (decimals, never floats) or raise BadResponse with a reason."""
    try:
        return _DECODER.decode(body)  # C decoder, floats as Decimal; any doubt goes to the checks below
    except (msgspec.DecodeError, ValueError, TypeError):
        pass
    # Neither an HTML page nor an empty body is JSON: these are looked for only once the decoder has
    # refused the body (a page of records is never copied to be stripped).
    head = body[:200].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<")):
        raise BadResponse("got an HTML page instead of JSON", body)
    if not body.strip():
        raise BadResponse("empty body instead of JSON", body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadResponse(f"body is not valid UTF-8 ({exc.reason} at byte {exc.start})", body) from exc
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise BadResponse(f"malformed or truncated JSON ({exc.msg} at char {exc.pos})", body) from exc


def retry_after_seconds(resp: Response) -> float | None:
    value = resp.headers.get("Retry-After") or resp.headers.get("RateLimit-Reset")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def quota_exhausted_seconds(resp: Response) -> float | None:
    """Seconds to hold off when a non-429 answer says the quota is used up (IETF draft headers
    ``RateLimit-Remaining: 0`` + ``RateLimit-Reset: <seconds>``, e.g. DealPOS): our own limiter's clock
    and the server's fixed window can be out of phase by the network delay, so the server's word wins."""
    if resp.status_code == 429 or (resp.headers.get("RateLimit-Remaining") or "").strip() != "0":
        return None
    reset = (resp.headers.get("RateLimit-Reset") or "").strip()
    return float(reset) if reset.isdigit() and int(reset) > 0 else None


BodyCheck = Callable[[Any], "tuple[str, bool] | None"]


class HttpClient:
    """Connection pools + auth + retry + rate limit for one provider connection."""

    def __init__(
        self,
        base_url: str,
        *,
        conn_id: str,
        auth: Auth | None = None,
        retry: RetryPolicy | None = None,
        rate_limiter: RateLimiter | None = None,
        default_headers: Mapping[str, str] | None = None,
        body_check: BodyCheck | None = None,
        verify: bool = True,
        pool_size: int = 16,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = base_url.rstrip("/") + "/"
        self.conn_id = conn_id
        self.auth = auth or Auth()
        self.retry = retry or RetryPolicy()
        self.limiter = rate_limiter
        self.default_headers = dict(default_headers or {})
        self.body_check = body_check
        self.verify = verify
        self.stats = Stats()
        self._sleep = sleep
        self.pool = self._make_pool(pool_size)
        self.secrets: set[str] = set()  # every credential and token: scrubbed from error messages

    def add_secret(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            self.secrets.add(secret)

    def scrub(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def _make_pool(self, pool_size: int) -> urllib3.PoolManager:
        """The client's connection pools (urllib3's are thread-safe: one for all threads).

        The environment's proxy and CA-bundle settings are read once, for the provider's host; a
        request then goes straight through urllib3. ``requests.Session.request`` took 0.6 to 1.0 ms of
        CPU a request on top of urllib3's 0.3 to 0.4 ms (preparing, merging settings, hooks, cookies,
        the response object), under the GIL the extraction's parsing runs on: 0.5 s in 1,000 pages."""
        if self.verify is True:
            tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED",
                                   "ca_certs": os.environ.get("REQUESTS_CA_BUNDLE")
                                   or os.environ.get("CURL_CA_BUNDLE") or requests.utils.DEFAULT_CA_BUNDLE_PATH}
        else:
            tls = {"cert_reqs": "CERT_NONE", "assert_hostname": False}
        kw = {"num_pools": 4, "maxsize": pool_size, "retries": False, **tls}
        proxy = requests.utils.get_environ_proxies(self.base_url).get(urlsplit(self.base_url).scheme)
        if not proxy:
            return urllib3.PoolManager(**kw)
        parts = urllib3.util.parse_url(proxy)
        headers = (urllib3.util.make_headers(proxy_basic_auth=unquote(parts.auth))
                   if parts.auth else None)
        return urllib3.ProxyManager(proxy, proxy_headers=headers, **kw)

    def url(self, path: str) -> str:
        if urlsplit(path).scheme:
            return path
        return urljoin(self.base_url, path.lstrip("/"))

    def raw_request(self, method: str, url: str, *, params: Mapping[str, Any] | None = None,
                    data: Any = None, headers: Mapping[str, str] | None = None) -> Response:
        """One request with no retry, sent at once: request_json has waited for the rate limiter.

        The query and a form body are encoded as requests encodes them (a list value repeats its key, a
        None value is left out); redirects are followed (an Authorization header never to another host).
        Transport errors are raised as requests' exceptions (Timeout, ConnectionError,
        ChunkedEncodingError), the ones request_json retries."""
        if params:
            query = requests.models.RequestEncodingMixin._encode_params(params)  # noqa: SLF001
            if query:
                url = f"{url}&{query}" if urlsplit(url).query else f"{url}?{query}"
        hdrs = {**_DEFAULT_HEADERS, **(headers or {})}
        if isinstance(data, dict):
            data = requests.models.RequestEncodingMixin._encode_params(data).encode()  # noqa: SLF001
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        timeout = urllib3.Timeout(connect=self.retry.connect_timeout, read=self.retry.read_timeout)
        try:
            resp = self.pool.request(method, requests.utils.requote_uri(url), body=data, headers=hdrs,
                                     timeout=timeout, preload_content=False, decode_content=True,
                                     retries=_REDIRECTS)
        except urllib3.exceptions.MaxRetryError as exc:
            raise _transport_error(exc.reason or exc) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise _transport_error(exc) from exc
        body = _read_body(resp)
        out = Response(resp.status, resp.headers, body)
        self.stats.count(out.status_code, len(body))
        if self.limiter and (hold := quota_exhausted_seconds(out)) is not None:
            self.limiter.pause(hold)
        return out

    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, Any] | None = None,
        authenticate: bool = True,
        refused_hint: str = "check the credentials stored in that Airflow connection",
    ) -> tuple[Any, Response]:
        """Send a request and return (parsed JSON, response), retrying what is worth retrying.

        ``authenticate=False`` is for the token endpoints themselves (the auth strategies' grants): no
        auth header, no refresh on 401, and a 400/401/403 is a refusal of the credentials (OAuth2
        answers a bad grant with 400): an AuthError ending with ``refused_hint``. Messages never carry a
        registered secret.
        """
        url = self.url(path)
        where = f"{method} {urlsplit(url).path}"
        refused = (400, 401, 403) if not authenticate else (401, 403)
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            # Wait for the rate limiter first, then take the token: a token taken before a long wait (a
            # 429's pause) may die before its request is sent, and a 401 straight after a refresh is a
            # refusal of the credentials.
            if self.limiter:
                self.limiter.acquire()
            hdrs = {"Accept": "application/json", **self.default_headers, **(headers or {})}
            if authenticate:
                hdrs.update(self.auth.headers(self))
            data: Any = None
            if json_body is not None:
                # DealPOS 500s on bodyless requests that declare JSON: only send it with a body.
                hdrs["Content-Type"] = "application/json"
                data = json.dumps(json_body, default=str).encode()
            elif form is not None:
                data = dict(form)  # application/x-www-form-urlencoded
            reason: str
            wait: float | None = None
            try:
                resp = self.raw_request(method, url, params=params, data=data, headers=hdrs)
            except requests.Timeout:
                reason = "timeout"
                self.stats.count(None)
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                reason = "connection error" if not isinstance(exc, requests.exceptions.ChunkedEncodingError) \
                    else "dropped connection"
                self.stats.count(None)
            else:
                status = resp.status_code
                if status == 401 and authenticate and self.auth.can_refresh and not refreshed:
                    # The new token is taken by the next attempt, after its wait for the rate limiter:
                    # one taken now could die during that wait (a 429's pause), and a 401 straight after a
                    # refresh is a refusal of the credentials.
                    refreshed = True
                    self.auth.expire(hdrs)
                    self.stats.refreshes += 1
                    attempt -= 1  # a refresh is not a failed attempt
                    continue
                if status in refused:
                    raise AuthError(self.scrub(
                        f"connection {self.conn_id!r} was refused by {where}: HTTP {status} "
                        f"{_short_error(resp)}; {refused_hint}"), status=status)
                if status in RETRYABLE_STATUS:
                    reason = f"HTTP {status}"
                    wait = retry_after_seconds(resp)
                    if status == 429 and wait is not None and self.limiter:
                        self.limiter.pause(wait)
                elif status >= 400:
                    raise ApiError(self.scrub(f"connection {self.conn_id!r}: {where} failed with HTTP {status} "
                                              f"{_short_error(resp)}"), status=status)
                else:
                    try:
                        body = parse_json(resp.content)
                        problem = self.body_check(body) if self.body_check else None
                    except BadResponse as exc:
                        reason = exc.args[0]
                        if attempt >= self.retry.max_attempts:
                            raise BadResponse(f"connection {self.conn_id!r}: {where} gave a bad body after "
                                              f"{attempt} attempts: {reason}", exc.body) from None
                    else:
                        if problem is None:
                            return body, resp
                        message, retryable = problem
                        if not retryable:
                            cls = AuthError if not authenticate else ApiError
                            raise cls(self.scrub(f"connection {self.conn_id!r}: {where} answered with an "
                                                 f"error: {message}"), status=status)
                        reason = f"body error: {message}"
            if attempt >= self.retry.max_attempts:
                raise ApiError(f"connection {self.conn_id!r}: {where} still failing after {attempt} "
                               f"attempts (last: {reason})", retryable=True)
            self.stats.retried(reason.split(":")[0].split(" (")[0])
            # A 401 straight after a refresh is a refusal; one after a failed attempt in between (a
            # timeout, a 5xx) may be the new token expiring in turn: that one may refresh again.
            refreshed = False
            delay = wait if wait is not None else self.retry.backoff(attempt)
            log.warning("%s: %s, retry %d/%d in %.2fs", where, reason, attempt,
                        self.retry.max_attempts - 1, delay)
            self._sleep(min(delay, max(self.retry.max_delay, 0)) if wait is None else delay)


def _read_body(resp: urllib3.BaseHTTPResponse) -> bytes:
    """A streamed response's body, read in one call; the connection goes back to the pool. Errors while
    reading are the ones requests raises (ChunkedEncodingError for a body cut short, ConnectionError)."""
    try:
        return resp.read(decode_content=True)
    except urllib3.exceptions.ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.exceptions.ConnectionError(exc) from exc
    except urllib3.exceptions.DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except urllib3.exceptions.SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc
    finally:
        resp.release_conn()


def _short_error(resp: Response) -> str:
    text = resp.text[:200].replace("\n", " ")
    return f"({text})" if text else ""
