"""DealPOS hook + engine against the simulator: full extractions equal the simulator's truth, auth
failures are clear and secret-free, an expiring token is refreshed once, the documented rate limit
(scaled down) is never exceeded, and the staging models reproduce the truth's money exactly."""

from __future__ import annotations

import dataclasses
import time
from decimal import Decimal

import duckdb
import pytest
import requests

from invoice_warehouse.engine.http import AuthError
from invoice_warehouse.engine.manifest import read_manifests
from invoice_warehouse.engine.runner import run_stream
from invoice_warehouse.providers.dealpos import SPEC, DealposHook, _pages
from invoice_warehouse.warehouse.dbt import run_dbt
from simulators import dealpos as sim_dealpos
from tests.helpers import client, conn_info, day, extract, extract_and_load, query

P = "dealpos"
START, END = day("2025-01-01"), day("2025-03-15")
#: The documented window is 180 s; tests shrink both sides the same way (engine env + simulator).
WINDOW = 1.0
MONEY_COLUMNS = {"invoices": ("Amount", "ReturnAmount"), "returns": ("Amount",),
                 "payments_received": ("Amount",)}


@pytest.fixture(autouse=True)
def scaled_rate_limit(sim, monkeypatch):
    monkeypatch.setenv("IWH_RATE_WINDOW_SCALE", str(WINDOW / 180))
    faults = sim.state.faults[P]
    before = faults.rate_limit
    faults.update(rate_limit=(50, WINDOW))
    yield
    faults.update(rate_limit=before)


def _landed(landing, stream: str) -> tuple[int, int, dict[str, Decimal]]:
    """(rows, distinct primary keys, money sums) of everything landed for one stream."""
    files = [m["data_path"] for m in read_manifests(landing, P, stream)]
    pk = SPEC.stream(stream).primary_key[0]
    cols = MONEY_COLUMNS.get(stream, ())
    sums = "".join(f", coalesce(sum(dedup.{c}), 0)" for c in cols)
    with duckdb.connect() as con:
        row = con.execute(
            f"select (select count(*) from read_parquet(?)), count(*){sums} from "
            f"(select * from read_parquet(?) qualify row_number() over (partition by {pk}) = 1) dedup",
            [files, files]).fetchone()
    return row[0], row[1], dict(zip(cols, row[2:], strict=True))


def test_full_extraction_of_every_stream_equals_truth(sim, tmp_path):
    truth = sim.state.truth(P, START, END)
    assert set(truth["counts"]) == {s.name for s in SPEC.streams}
    for stream in SPEC.streams:
        manifest = extract(sim, P, stream.name, START, END, tmp_path)
        assert manifest["quarantined"] == 0, manifest["quarantine_reasons"]
        rows, keys, sums = _landed(tmp_path, stream.name)
        assert (stream.name, keys) == (stream.name, truth["counts"][stream.name])
        assert rows == keys  # no faults: no duplicates either
        assert sums == truth["sums"].get(stream.name, {})
    # the nested lines and payments came along in full
    inv = [m["data_path"] for m in read_manifests(tmp_path, P, "invoices")]
    with duckdb.connect() as con:
        lines, payments, cancelled = con.execute(
            "select sum(json_array_length(Variants)), sum(json_array_length(Payments)), "
            "count(*) filter (where Status = 'Cancelled') from read_parquet(?)", [inv]).fetchone()
    assert (lines, payments, cancelled) == (truth["nested"]["invoice_lines"], truth["nested"]["invoice_payments"],
                                            truth["nested"]["cancelled_invoices"])


def test_windows_are_inclusive_local_dates_and_slices_add_up(sim, tmp_path):
    # One day: From = To = 2025-02-03; payments_received is sliced by 31 days (no pagination).
    one = extract(sim, P, "invoices", day("2025-02-03"), day("2025-02-04"), tmp_path / "a")
    assert one["records"] == sim.state.truth(P, day("2025-02-03"), day("2025-02-04"))["counts"]["invoices"]
    paid = extract(sim, P, "payments_received", START, END, tmp_path / "b")
    assert len(paid["slices"]) == 3
    assert paid["records"] == sim.state.truth(P, START, END)["counts"]["payments_received"]


def test_auth_failure_names_the_connection_never_the_secret(sim, tmp_path):
    wrong = "00000000-1111-4222-8333-444444444444"
    c = client(sim, P, client_secret=wrong)
    with pytest.raises(AuthError) as err:
        run_stream(c, SPEC, SPEC.stream("invoices"), start=START, end=END, landing=tmp_path,
                   window_label="x", run_id="t")
    msg = str(err.value)
    assert "'dealpos_default'" in msg and "HTTP 401" in msg and "Client Secret" in msg
    assert wrong not in msg and sim.state.credentials[P]["client_secret"] not in msg
    assert not read_manifests(tmp_path, P, "invoices")  # nothing committed


def test_hook_test_connection_and_form(sim, monkeypatch):
    hook = DealposHook()
    assert hook.conn_id == "dealpos_default" and DealposHook.conn_type == "dealpos"
    monkeypatch.setattr(hook, "conn_info", lambda: conn_info(sim, P))
    assert hook.test_connection() == (True, "Connected to DealPOS")
    bad = DealposHook()
    monkeypatch.setattr(bad, "conn_info", lambda: conn_info(sim, P, client_secret="not-a-guid"))
    ok, msg = bad.test_connection()
    assert not ok and "client_secret must be a GUID" in msg and "not-a-guid" not in msg
    form = SPEC.connection_type_info("invoice_warehouse.providers.dealpos.DealposHook")["ui-field-behaviour"]
    assert form["relabeling"] == {"host": "Base URL", "login": "Client ID", "password": "Client Secret"}


def test_transient_faults_on_the_token_request_are_retried(sim, tmp_path):
    faults = sim.state.faults[P]
    faults.update(schedule=["5xx", "html", "drop", "malformed"])  # the first four requests: all the token's
    try:
        c = client(sim, P)
        manifest = run_stream(c, SPEC, SPEC.stream("outlets"), start=START, end=END, landing=tmp_path,
                              window_label="x", run_id="t")
    finally:
        faults.update(schedule=[])
    assert manifest["records"] == sim.state.truth(P, START, END)["counts"]["outlets"]
    assert c.auth.grants == 1 and c.stats.retries == 4
    reasons = dict(c.stats.retry_reasons)
    server_error = [k for k in reasons if k.startswith("HTTP 50")]  # 500, 502 or 503 (seeded)
    assert reasons == {server_error[0]: 1, "dropped connection": 1, "got an HTML page instead of JSON": 1,
                       "malformed or truncated JSON": 1}


def test_token_expiring_mid_run_is_refreshed_once(sim, tmp_path):
    faults, book = sim.state.faults[P], sim.state.tokens[P]
    ttl = 1.0
    faults.update(token_ttl=ttl)  # the next token dies after 1 s although it announces 3600 s
    base = SPEC.stream("invoices")
    state = {"pages": 0}

    def records(body):
        state["pages"] += 1
        if state["pages"] == 1:  # after the first page: later tokens live; this one expires now
            faults.update(token_ttl=None)
            time.sleep(ttl + 0.1)
        return body

    stream = dataclasses.replace(base, records=records, paginator=_pages(100))
    c = client(sim, P)
    issued = book.issued
    try:
        manifest = run_stream(c, SPEC, stream, start=day("2025-02-01"), end=day("2025-03-01"),
                              landing=tmp_path, window_label="x", run_id="t")
    finally:
        faults.update(token_ttl=None)
    truth = sim.state.truth(P, day("2025-02-01"), day("2025-03-01"))
    assert manifest["records"] == truth["counts"]["invoices"]
    assert state["pages"] == manifest["pages"] > 2
    assert (c.stats.refreshes, c.stats.statuses.get(401), book.issued - issued) == (1, 1, 2)


def test_more_than_50_requests_never_hit_429(fresh_sim, tmp_path):
    fresh_sim.state.faults[P].update(rate_limit=(50, WINDOW))
    start, end = day("2025-02-01"), day("2025-03-01")
    expected = fresh_sim.state.truth(P, start, end)["counts"]["invoices"]
    size = 10
    stream = dataclasses.replace(SPEC.stream("invoices"), paginator=_pages(size))
    c = client(fresh_sim, P)
    manifest = run_stream(c, SPEC, stream, start=start, end=end, landing=tmp_path, window_label="x",
                          run_id="t")
    pages = expected // size + 1
    assert manifest["records"] == expected
    assert c.stats.requests == pages + 1 > 50  # + the token request, which counts too
    assert c.stats.statuses == {200: pages + 1}
    assert fresh_sim.state.faults[P].injected.get("rate_limited", 0) == 0
    assert c.limiter is not None and c.limiter.waited > 0  # it did have to hold back


def test_quota_used_by_someone_else_is_respected(fresh_sim, tmp_path):
    # The 50 calls are per tenant "across all endpoints": another system has used 45 of this window.
    # Our limiter cannot know; the server's RateLimit-Remaining: 0 + RateLimit-Reset must stop us.
    fresh_sim.state.faults[P].update(rate_limit=(50, WINDOW))
    url = fresh_sim.base_url(P) + "/api/v3"
    other = requests.post(f"{url}/Token/OAuth2", json=fresh_sim.state.credentials[P], timeout=10).json()
    with requests.Session() as s:
        for _ in range(44):
            s.get(f"{url}/Outlet", headers={"Authorization": f"Bearer {other['access_token']}"}, timeout=10)
    start, end = day("2025-02-01"), day("2025-02-08")
    stream = dataclasses.replace(SPEC.stream("invoices"), paginator=_pages(20))
    c = client(fresh_sim, P)
    manifest = run_stream(c, SPEC, stream, start=start, end=end, landing=tmp_path, window_label="x", run_id="t")
    assert manifest["records"] == fresh_sim.state.truth(P, start, end)["counts"]["invoices"]
    assert c.stats.requests > 5 and set(c.stats.statuses) == {200}
    assert fresh_sim.state.faults[P].injected.get("rate_limited", 0) == 0


def test_staging_models_reproduce_truth(sim, data_dir):
    truth = sim.state.truth(P, START, END)
    db = extract_and_load(sim, [P], START, END, data_dir)
    run_dbt(["build", "--select", "path:models/staging/dealpos"], work_db=db)

    inv = query(db, "select count(*), sum(total_amount), sum(credit_amount), "
                    "count(*) filter (where source_status = 'Cancelled') from staging.stg_dealpos__invoices")
    assert inv == [(truth["counts"]["invoices"], truth["sums"]["invoices"]["Amount"],
                    truth["sums"]["invoices"]["ReturnAmount"], truth["nested"]["cancelled_invoices"])]
    key_of = {sim_dealpos.customer_id(n): f"C{n:03d}" for n in range(1, 41)}
    rows = query(db, "select customer_id, currency, sum(total_amount), sum(amount_paid_reported), "
                     "sum(total_amount - amount_paid_reported - credit_amount) "
                     "from staging.stg_dealpos__invoices where source_status <> 'Cancelled' group by all")
    got = {(key_of[c], cur): {"invoiced": i, "paid": p, "open": o} for c, cur, i, p, o in rows}
    assert got == truth["receivables"]

    assert query(db, "select count(*), sum(line_total) from staging.stg_dealpos__invoice_lines") == [
        (truth["nested"]["invoice_lines"], truth["sums"]["invoices"]["Amount"])]
    paid = sum(r["paid"] for r in truth["receivables"].values())
    assert query(db, "select count(*), sum(amount) from staging.stg_dealpos__payments") == [
        (truth["nested"]["invoice_payments"], paid)]
    assert query(db, "select count(*), sum(amount) from staging.stg_dealpos__returns") == [
        (truth["counts"]["returns"], truth["sums"]["returns"]["Amount"])]
    assert query(db, "select customer_type, count(*) from staging.stg_dealpos__customers group by all "
                     "order by 1") == [("customer", truth["counts"]["customers"]),
                                       ("outlet", truth["counts"]["outlets"])]
    variants = sum(len(p.variants) for p in sim_dealpos.catalogue(sim.state.world.seed)
                   if p.created <= sim.state.world.as_of)
    assert query(db, "select count(*) from staging.stg_dealpos__products") == [(variants,)]
