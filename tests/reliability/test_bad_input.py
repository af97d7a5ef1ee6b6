"""A catalogue of bad responses and bad records, each one a test.

Each case is served by a scripted API (tests/reliability/scripted.py) to a provider with two streams:
``things`` gets the bad input, ``others`` is fine. Both run through the real task code
(``pipeline.extract`` per entity, as the mapped Airflow tasks do, then ``pipeline.load``). Every case
ends one of two ways, and never a third:

* handled: every record lands, with the exact value (an id sent as a number is the string "7", a 7-digit
  fraction is truncated to microseconds, 0001-01-01 is null, duplicates are merged by key, ...);
* quarantined with a clear reason: the record (or, when the page itself is unreadable, the whole page
  and the stream's failure) is in ``meta.quarantine`` with that exact reason and its raw text, counted
  in the load audit and in the run's log.

And the other stream lands in full every time.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb
import pytest

from invoice_warehouse import config, pipeline, registry
from invoice_warehouse.engine.hook import ProviderHook
from invoice_warehouse.engine.http import HttpClient, RetryPolicy
from invoice_warehouse.engine.manifest import read_manifests
from invoice_warehouse.engine.paginate import NextLinkPaginator, PageNumberPaginator, Paginator
from invoice_warehouse.engine.schema import Field, Schema
from invoice_warehouse.engine.spec import ProviderSpec, Stream
from tests.reliability.scripted import Resp, ScriptedApi, drf

UTC = dt.timezone.utc
T0, T1 = dt.datetime(2025, 3, 1, tzinfo=UTC), dt.datetime(2025, 3, 2, tzinfo=UTC)
CONN = "connection 'fake_default': GET /things/"

SCHEMA = Schema.of(
    Field("id", required=True),
    Field("amount", "decimal(18,2)", required=True),
    Field("currency", "currency"),
    Field("status", enum=("open", "paid", "void")),
    Field("issued_at", "timestamp"),
    Field("paid_at", "epoch_ms"),
    Field("customer"),
)


def rec(i: int | str, amount: Any = "10.00", **kw: Any) -> dict[str, Any]:
    return {"id": str(i), "amount": amount, "currency": "IDR", "status": "open", **kw}


def drf_pages() -> Paginator:
    return NextLinkPaginator(page_size=2, parallel=False)


def numbered_pages() -> Paginator:
    return PageNumberPaginator(page_param="page", size_param="limit", page_size=2, total_pages_path="total_pages")


def one(body: Any, **kw: Any) -> dict[int, list[Resp]]:
    """A single page served for ever."""
    return {1: [Resp(body, **kw)]}


@dataclass
class Case:
    id: str
    pages: dict[int, list[Resp]]
    landed: list[str] | int = field(default_factory=list)  # ids in raw_fake.things (or their count)
    reasons: list[str] = field(default_factory=list)  # meta.quarantine reasons, sorted
    error: str | None = None  # the things extraction fails with exactly this
    paginator: Callable[[], Paginator] = drf_pages
    values: dict[str, Any] | None = None  # column -> exact values of the landed rows, in id order
    retried: dict[str, int] | None = None  # the client's retry reasons


HUGE = 25_000
CASES = [
    Case("malformed-json", one(b"{'count': 1, 'next': null, 'results': []}"),
         reasons=[f"{CONN} gave a bad body after 3 attempts: malformed or truncated JSON (Expecting property name "
                  "enclosed in double quotes at char 1)"],
         error=f"{CONN} gave a bad body after 3 attempts: malformed or truncated JSON (Expecting property name "
               "enclosed in double quotes at char 1)"),
    Case("html-error-page-with-200", one(b"<!DOCTYPE html><html><body><h1>We'll be back soon</h1></body></html>",
                                         content_type="text/html"),
         reasons=[f"{CONN} gave a bad body after 3 attempts: got an HTML page instead of JSON"],
         error=f"{CONN} gave a bad body after 3 attempts: got an HTML page instead of JSON"),
    Case("truncated-json-with-200", one(b'{"count": 2, "next": null, "results": [{"id": "1", "amount": "1'),
         reasons=[f"{CONN} gave a bad body after 3 attempts: malformed or truncated JSON (Unterminated string "
                  "starting at at char 61)"],
         error=f"{CONN} gave a bad body after 3 attempts: malformed or truncated JSON (Unterminated string "
               "starting at at char 61)"),
    Case("connection-cut-mid-body-then-fine", {1: [Resp(drf([rec(1), rec(2)]), truncate=True),
                                                   Resp(drf([rec(1), rec(2)]))]},
         landed=["1", "2"], retried={"dropped connection": 1}),
    Case("non-utf8-bytes", one(b'{"count": 1, "next": null, "results": [{"id": "1", "amount": "1.00", '
                               b'"customer": "Caf\xe9 Jaya"}]}'),
         reasons=[f"{CONN} gave a bad body after 3 attempts: body is not valid UTF-8 (invalid continuation byte "
                  "at byte 85)"],
         error=f"{CONN} gave a bad body after 3 attempts: body is not valid UTF-8 (invalid continuation byte at "
               "byte 85)"),
    Case("number-as-string-and-id-as-number", one(drf([{"id": 7, "amount": "12.50"}, {"id": "8", "amount": 3}])),
         landed=["7", "8"], values={"amount": [Decimal("12.50"), Decimal("3.00")]}),
    Case("string-where-a-number-belongs", one(drf([rec(1), rec(2, amount="twelve")])),
         landed=["1"], reasons=["field 'amount': 'twelve' is not a number"]),
    Case("boolean-where-a-number-belongs", one(drf([rec(1, amount=True)])),
         reasons=["field 'amount': True is not a number"]),
    Case("missing-required-keys", one(drf([{"id": "1", "currency": "IDR"}, {"amount": "1.00"}])),
         reasons=["required field 'amount' is missing", "required field 'id' is missing"]),
    Case("null-money", one(drf([rec(1, amount=None), rec(2)])),
         landed=["2"], reasons=["required field 'amount' is null"]),
    Case("null-primary-key", one(drf([rec(1) | {"id": None}])),
         reasons=["required field 'id' is null"]),
    Case("negative-amount-is-a-credit", one(drf([rec(1, amount="-12.50"), rec(2, amount=-3)])),
         landed=["1", "2"], values={"amount": [Decimal("-12.50"), Decimal("-3.00")]}),
    Case("more-decimals-than-the-column", one(drf([rec(1, amount="1.005")])),
         reasons=["field 'amount': 1.005 has more than 2 decimal places"]),
    Case("nan-money", one(b'{"count": 1, "next": null, "results": [{"id": "1", "amount": NaN}]}'),
         reasons=["field 'amount': float nan is not an exact amount"]),
    Case("seven-digit-fractional-seconds", one(drf([rec(1, issued_at="2025-03-01T10:00:00.1234567Z"),
                                                   rec(2, issued_at="2025-03-01T10:00:00.9999999+07:00")])),
         landed=["1", "2"], values={"issued_at": [dt.datetime(2025, 3, 1, 10, 0, 0, 123456, tzinfo=UTC),
                                                  dt.datetime(2025, 3, 1, 3, 0, 0, 999999, tzinfo=UTC)]}),
    Case("timestamp-without-a-zone", one(drf([rec(1, issued_at="2025-03-01T10:00:00")])),
         reasons=["field 'issued_at': '2025-03-01T10:00:00' has no offset and no source zone is declared"]),
    Case("0001-01-01-and-epoch-0-are-no-date", one(drf([rec(1, issued_at="0001-01-01T00:00:00", paid_at=0),
                                                       rec(2, issued_at="0001-01-01T00:00:00Z",
                                                           paid_at=1740823200000)])),
         landed=["1", "2"], values={"issued_at": [None, None],
                                    "paid_at": [None, dt.datetime(2025, 3, 1, 10, 0, tzinfo=UTC)]}),
    Case("duplicate-ids-within-a-page", one(drf([rec(1), rec(1), rec(2)])), landed=["1", "2"]),
    Case("duplicate-ids-across-pages", {1: [Resp(drf([rec(1), rec(2)], next_page=2))],
                                        2: [Resp(drf([rec(2), rec(3)]))]},
         landed=["1", "2", "3"]),
    Case("empty-page-mid-stream", {1: [Resp(drf([rec(1), rec(2)], next_page=2))], 2: [Resp(drf([], next_page=3))],
                                   3: [Resp(drf([rec(3)]))]},
         landed=["1", "2", "3"]),
    Case("total-page-count-lies-low", {1: [Resp({"total_pages": 2, "results": [rec(1), rec(2)]})],
                                       2: [Resp({"total_pages": 2, "results": [rec(3), rec(4)]})],
                                       3: [Resp({"total_pages": 2, "results": [rec(5)]})]},
         paginator=numbered_pages, landed=["1", "2", "3", "4", "5"]),
    Case("total-page-count-lies-high", {1: [Resp({"total_pages": 4, "results": [rec(1), rec(2)]})],
                                        2: [Resp({"total_pages": 4, "results": [rec(3)]})],
                                        3: [Resp({"total_pages": 4, "results": []})],
                                        4: [Resp({"total_pages": 4, "results": []})]},
         paginator=numbered_pages, landed=["1", "2", "3"]),
    Case("record-count-lies-low", {1: [Resp(drf([rec(1), rec(2)], next_page=2, count=2))],
                                   2: [Resp(drf([rec(3)], count=2))]},
         paginator=lambda: NextLinkPaginator(page_size=2), landed=["1", "2", "3"]),
    Case("next-link-loops", {1: [Resp(drf([rec(1), rec(2)], next_page=2))],
                             2: [Resp(drf([rec(3), rec(4)], next_page=1))]},
         error="fake.things: pagination loop: /things/ with {'limit': '2', 'page': '1'} was already read in this "
               "run (the API's next link points back to a page already read)"),
    Case("huge-page", one(drf([rec(i, amount=f"{i}.25") for i in range(HUGE)])), landed=HUGE),
    Case("unknown-status", one(drf([rec(1), rec(2, status="exploded")])),
         landed=["1"], reasons=["field 'status': unknown value 'exploded' (known: open, paid, void)"]),
    Case("unknown-currency", one(drf([rec(1, currency="XXY"), rec(2, currency="idr")])),
         landed=["2"], reasons=["field 'currency': 'XXY' is not an ISO 4217 currency code"],
         values={"currency": ["IDR"]}),
    Case("field-changes-type-between-pages", {1: [Resp(drf([rec(1, amount="1.50", customer="C1"), rec(2)],
                                                           next_page=2))],
                                              2: [Resp(drf([rec(3, amount=2.5, customer={"id": "C1"}),
                                                            rec(4, amount=4, customer=17)]))]},
         landed=["1", "2", "4"], reasons=["field 'customer': expected a scalar, got dict"],
         values={"amount": [Decimal("1.50"), Decimal("10.00"), Decimal("4.00")], "customer": ["C1", None, "17"]}),
    Case("record-is-not-an-object", one(drf(["oops", rec(2)])),
         landed=["2"], reasons=["record is a str, not an object"]),
    Case("records-are-not-a-list", one(drf("oops")),
         error="fake.things: unexpected response shape from /things/: records at 'results' are a str, not a list"),
    Case("429-with-retry-after-then-fine", {1: [Resp({"detail": "slow down"}, status=429, headers={"Retry-After": "0"}),
                                               Resp(drf([rec(1)]))]},
         landed=["1"], retried={"HTTP 429": 1}),
    Case("5xx-for-ever", one(b"<html>Bad Gateway</html>", status=502, content_type="text/html"),
         error=f"{CONN} still failing after 3 attempts (last: HTTP 502)"),
    Case("404-is-not-retried", {},
         error=f"{CONN} failed with HTTP 404 ({{\"detail\": \"Invalid page.\"}})"),
]


def spec_for(case: Case) -> ProviderSpec:
    things = Stream(name="things", path="/things/", primary_key=("id",), schema=SCHEMA, paginator=case.paginator)
    others = Stream(name="others", path="/others/", primary_key=("id",), schema=SCHEMA, paginator=drf_pages)
    return ProviderSpec(name="fake", title="Fake", conn_type="fake", auth=lambda c, s: None,
                        streams=(things, others), max_concurrency=2)


@pytest.fixture()
def run_case(tmp_path, monkeypatch, caplog):
    """Serve a case, run both entities as the extract tasks do (a failing task does not stop the other),
    load, and return what landed, what was quarantined, the audit and the log."""
    monkeypatch.setenv("IWH_DATA_DIR", str(tmp_path / "data"))
    caplog.set_level(logging.INFO)

    def run(case: Case) -> dict[str, Any]:
        spec = spec_for(case)
        routes = {"/things/": case.pages, "/others/": {1: [Resp(drf([rec("a"), rec("b")]))]}}
        with ScriptedApi(routes) as api:
            client = HttpClient(api.url, conn_id="fake_default",
                                retry=RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.001, read_timeout=5))
            hook = type("FakeHook", (ProviderHook,), {"spec": spec, "get_conn": lambda self: client})
            monkeypatch.setattr(registry, "PROVIDERS", {"fake": spec})
            monkeypatch.setattr(registry, "HOOKS", {"fake": hook})
            results: dict[str, Any] = {}
            for item in pipeline.plan("fake", {}, T0, T1):
                try:
                    results[item["entity"]] = pipeline.extract(item, "bad-input")
                except Exception as exc:  # noqa: BLE001 - Airflow would fail this mapped task only
                    results[item["entity"]] = exc
        audits = {a["entity"]: a for a in pipeline.load("bad-input")}
        with duckdb.connect(str(config.work_db()), read_only=True) as con:
            def rows(sql: str) -> list[tuple]:
                return con.execute(sql).fetchall()

            cols = [c for c in SCHEMA.names]
            things = [dict(zip(cols, r, strict=True)) for r in rows(
                f"SELECT {', '.join(cols)} FROM raw_fake.things ORDER BY id")]
            out = {
                "results": results, "audits": audits, "things": things, "client": client,
                "others": rows("SELECT id, amount FROM raw_fake.others ORDER BY id"),
                "quarantine": rows("SELECT entity, reason, raw, source, _run_id FROM meta.quarantine ORDER BY reason"),
                "log": caplog.text,
                "manifests": read_manifests(config.landing_dir(), "fake", "things"),
            }
        return out

    return run


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, run_case):
    out = run_case(case)
    things = out["results"]["things"]

    # The other stream of the run landed in full, whatever happened to this one.
    assert out["results"]["others"]["records"] == 2
    assert out["others"] == [("a", Decimal("10.00")), ("b", Decimal("10.00"))]

    if case.error is None:
        assert isinstance(things, dict), things
    else:
        assert isinstance(things, Exception) and str(things) == case.error

    landed = [r["id"] for r in out["things"]]
    assert (len(landed) if isinstance(case.landed, int) else landed) == case.landed
    if case.values:
        for column, values in case.values.items():
            assert [r[column] for r in out["things"]] == values, column
    if case.retried is not None:
        assert out["client"].stats.retry_reasons == case.retried

    # Quarantine: queryable in meta.quarantine with the exact reason, the raw text and where it came from.
    q = out["quarantine"]
    assert [r[1] for r in q] == case.reasons
    assert all(entity == "things" and raw and source.startswith("/things/ {") and run == "bad-input"
               for entity, _, raw, source, run in q)
    # ... counted in the load audit and in the run's log.
    audit = out["audits"]["things"]
    assert audit["rows_quarantined"] == len(case.reasons)
    if case.reasons:
        assert f"quarantined fake.things: {len(case.reasons)} rows" in out["log"]
        if case.error is None:
            assert f"fake.things: {len(case.reasons)} records quarantined" in out["log"]
            assert things["quarantined"] == len(case.reasons)
    else:
        assert "quarantined fake.things" not in out["log"]
    # Nothing silently dropped: every record the engine read was written or quarantined; a failed
    # extraction committed nothing (its page, if unreadable, is in the quarantine above).
    manifests = out["manifests"]
    if case.error is None:
        assert [(m["records_read"], m["records"] + m["quarantined"]) for m in manifests] == [
            (m["records_read"], m["records_read"]) for m in manifests]
        assert audit["rows_read"] == manifests[0]["records"]
    else:
        assert manifests == [] and audit["rows_read"] == 0


def test_the_catalogue_covers_what_it_claims():
    assert len(CASES) >= 20
    assert len({c.id for c in CASES}) == len(CASES)


def test_huge_page_amounts_are_exact(run_case):
    case = next(c for c in CASES if c.id == "huge-page")
    out = run_case(case)
    assert sum(r["amount"] for r in out["things"]) == Decimal(sum(range(HUGE))) + Decimal("0.25") * HUGE
