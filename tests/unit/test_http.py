"""The HTTP client against the simulator: retries, Retry-After, bad bodies, auth errors without secrets."""

from __future__ import annotations

import socket
from decimal import Decimal

import pytest

from invoice_warehouse.engine.auth import StaticTokenAuth
from invoice_warehouse.engine.http import (
    ApiError,
    AuthError,
    BadResponse,
    HttpClient,
    RateLimiter,
    RetryPolicy,
    parse_json,
)
from tests.helpers import client
from tests.reliability.scripted import Resp, ScriptedApi

PATH = "/api/v1/oms/invoices/"


def test_wrong_token_names_the_connection_and_never_the_token(sim):
    c = client(sim, "akinon", token="not-the-right-token-123")
    with pytest.raises(AuthError) as exc:
        c.request_json("GET", PATH, params={"limit": 1})
    msg = str(exc.value)
    assert msg == ("connection 'akinon_default' was refused by GET /akinon/api/v1/oms/invoices/: HTTP 401 "
                   '({"detail":"Invalid token."}); check the credentials stored in that Airflow connection')
    assert "not-the-right-token-123" not in msg
    assert c.stats.requests == 1  # a static token cannot be refreshed: no retry


def test_transient_faults_are_retried_until_success(fresh_sim):
    fresh_sim.state.faults["akinon"].update(schedule=["429", "5xx", "drop", "malformed", "html", "ok"],
                                            retry_after=0)
    c = client(fresh_sim, "akinon")
    body, _ = c.request_json("GET", PATH, params={"limit": 1})
    assert body["count"] >= 1
    assert c.stats.retries == 5
    five_xx = [k for k in c.stats.retry_reasons if k.startswith("HTTP 5")]
    assert five_xx in (["HTTP 500"], ["HTTP 502"], ["HTTP 503"])
    assert c.stats.retry_reasons == {"HTTP 429": 1, five_xx[0]: 1, "dropped connection": 1,
                                     "malformed or truncated JSON": 1, "got an HTML page instead of JSON": 1}
    assert fresh_sim.state.faults["akinon"].injected == {"429": 1, "5xx": 1, "drop": 1, "malformed": 1,
                                                         "html": 1}


def test_timeouts_are_retried(fresh_sim):
    fresh_sim.state.faults["akinon"].update(schedule=["slow", "ok"], slow_seconds=1.5)
    c = client(fresh_sim, "akinon", retry=RetryPolicy(max_attempts=3, base_delay=0.01, read_timeout=0.5))
    body, _ = c.request_json("GET", PATH, params={"limit": 1})
    assert body["count"] >= 1
    assert c.stats.retry_reasons == {"timeout": 1}


def test_retries_give_up_with_a_clear_error(fresh_sim):
    fresh_sim.state.faults["akinon"].update(schedule=["html"] * 3)
    c = client(fresh_sim, "akinon", retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.01))
    with pytest.raises(BadResponse, match="connection 'akinon_default': GET /akinon/api/v1/oms/invoices/ gave "
                                          "a bad body after 3 attempts: got an HTML page instead of JSON"):
        c.request_json("GET", PATH, params={"limit": 1})


def test_other_4xx_fail_fast(sim):
    c = client(sim, "akinon")
    with pytest.raises(ApiError) as exc:
        c.request_json("GET", PATH, params={"limit": 5, "page": 999})
    assert exc.value.status == 404
    assert c.stats.requests == 1
    assert str(exc.value).endswith('failed with HTTP 404 ({"detail":"Invalid page."})')


def test_parse_json_reasons():
    assert parse_json(b'{"a": 1.10}') == {"a": parse_json(b"1.10")}
    for body, reason in [(b"<html>oops</html>", "got an HTML page instead of JSON"),
                         (b'{"results": [1, 2', "malformed or truncated JSON"),
                         (b"", "empty body instead of JSON"),
                         (b'{"a": "\xff"}', "body is not valid UTF-8")]:
        with pytest.raises(BadResponse) as exc:
            parse_json(body)
        assert str(exc.value).startswith(reason)


def test_rate_limiter_never_exceeds_its_window():
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    lim = RateLimiter(3, 10.0, clock=lambda: now[0], sleep=sleep)
    times = []
    for _ in range(7):
        lim.acquire()
        times.append(round(now[0], 3))
    assert times == [0.0, 0.0, 0.0, 10.001, 10.001, 10.001, 20.002]


OK = Resp(b'{"ok": 1.50}')


@pytest.fixture
def recorder():
    """A local server (tests/reliability/scripted.py) that records every request; ``/hop`` redirects."""
    with ScriptedApi({"/list": {1: [OK]}, "/token": {1: [OK]}, "/land": {1: [OK]}, "/v1/items": {2: [OK]}}) as api:
        api.routes["/hop"] = {1: [Resp(b"", status=302, headers={"Location": f"{api.url}/land?from=hop"})]}
        yield api


def _plain_client(url: str, **kw):
    return HttpClient(url, conn_id="c", auth=StaticTokenAuth("tok-123"), **kw)


def test_the_query_and_a_form_reach_the_server_encoded_as_requests_encodes_them(recorder):
    c = _plain_client(recorder.url)
    body, resp = c.request_json("GET", "/list?cursor=a%2Fb", params={"status": ["open", "paid"], "skip": None,
                                                                     "q": "x y&z", "n": 2})
    assert body == {"ok": Decimal("1.50")} and resp.status_code == 200 and resp.text == '{"ok": 1.50}'
    c.request_json("POST", "/token", form={"grant_type": "client_credentials", "scope": "a b"},
                   authenticate=False)
    (m1, p1, h1, b1), (m2, p2, h2, b2) = recorder.seen
    assert (m1, p1, b1) == ("GET", "/list?cursor=a%2Fb&status=open&status=paid&q=x+y%26z&n=2", b"")
    assert (h1["Authorization"], h1["Accept"], h1["Accept-Encoding"]) == ("Token tok-123", "application/json",
                                                                          "gzip, deflate")
    assert (m2, p2, b2) == ("POST", "/token", b"grant_type=client_credentials&scope=a+b")
    assert h2["Content-Type"] == "application/x-www-form-urlencoded" and "Authorization" not in h2


def test_a_redirect_is_followed_and_the_token_never_goes_to_another_host(recorder):
    c = _plain_client(recorder.url)
    c.request_json("GET", "/hop")
    other_host = recorder.url.replace("127.0.0.1", "localhost")  # the same server, another host name
    recorder.routes["/hop"] = {1: [Resp(b"", status=302, headers={"Location": f"{other_host}/land?from=hop"})]}
    c.request_json("GET", "/hop")
    paths = [(p, h.get("Authorization")) for _, p, h, _ in recorder.seen]
    assert paths == [("/hop", "Token tok-123"), ("/land?from=hop", "Token tok-123"),
                     ("/hop", "Token tok-123"), ("/land?from=hop", None)]
    assert c.stats.requests == 2  # one counted request each, its redirect included


def test_a_refused_connection_is_retried_as_a_connection_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    c = _plain_client(f"http://127.0.0.1:{port}", retry=RetryPolicy(max_attempts=2, base_delay=0.001,
                                                                     max_delay=0.001))
    with pytest.raises(ApiError, match=r"^connection 'c': GET /x still failing after 2 attempts "
                                       r"\(last: connection error\)$"):
        c.request_json("GET", "/x")
    assert c.stats.retry_reasons == {"connection error": 1}


def test_the_environments_proxy_carries_the_requests_with_its_credentials(recorder, monkeypatch):
    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    proxy = recorder.url.replace("http://", "http://user:p%40ss@")
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, proxy)
    c = _plain_client("http://api.example.invalid/v1/")
    body, _ = c.request_json("GET", "items", params={"page": 2})
    (method, path, headers, _), = recorder.seen
    assert (method, path) == ("GET", "http://api.example.invalid/v1/items?page=2")  # absolute form: a proxy
    assert headers["Proxy-Authorization"] == "Basic dXNlcjpwQHNz"  # user:p@ss
    assert headers["Authorization"] == "Token tok-123"
