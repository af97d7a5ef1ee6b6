"""The HTTP client against the simulator: retries, Retry-After, bad bodies, auth errors without secrets."""

from __future__ import annotations

import pytest

from invoice_warehouse.engine.http import (
    ApiError,
    AuthError,
    BadResponse,
    RateLimiter,
    RetryPolicy,
    parse_json,
)
from tests.helpers import client

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
