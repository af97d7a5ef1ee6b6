"""REDEX through the engine: spec + hook -> Parquet -> DuckDB -> dbt staging, equal to the simulator's truth.

One full sweep (REDEX has no date filter) is extracted, loaded and built once for the module; the tests
then compare raw tables and staging models with ``truth()`` exactly (counts, money to the last of 6
decimals, receivables by the documented rule). Auth behaviour (a token expiring mid-run, refresh tokens
refused, bad credentials) and faults run against fresh simulators.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pyarrow.parquet as pq
import pytest

from invoice_warehouse.engine.http import AuthError
from invoice_warehouse.engine.runner import run_stream
from invoice_warehouse.engine.spec import ConnInfo
from invoice_warehouse.providers.redex import SPEC, RedexHook, body_check
from invoice_warehouse.registry import PROVIDERS
from invoice_warehouse.warehouse.dbt import run_dbt
from invoice_warehouse.warehouse.load import load_all
from simulators import redex as R
from simulators.world import World
from tests.helpers import client, conn_info, day, extract, extract_and_load, query

# Any window: the sweep is the same (no date filter); the label only names the partition.
START, END = day("2025-03-14"), day("2025-03-15")
VOID = ("Cancelled", "Expired", "Refunded")


@pytest.fixture(scope="module")
def built(sim, tmp_path_factory):
    """Extract every REDEX stream, load raw_redex, build the REDEX staging models (once)."""
    tmp = tmp_path_factory.mktemp("redex")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IWH_DATA_DIR", str(tmp))
        db = extract_and_load(sim, ["redex"], START, END, tmp)
        run_dbt(["build", "--select", "path:models/staging/redex"], work_db=db)
    return db


@pytest.fixture(scope="module")
def truth(sim) -> dict:
    return sim.state.truth("redex")


def _customer_keys() -> dict[str, str]:
    return {R.customer_id(n): f"C{n:03d}" for n in range(1, World.N_CUSTOMERS + 1)}


# --- raw ----------------------------------------------------------------------------------------------
def test_every_stream_equals_truth(built, truth):
    assert {s.name for s in SPEC.streams} == set(truth["counts"]) == set(truth["sums"])
    for stream in SPEC.streams:
        cols = list(truth["sums"][stream.name])
        pk = stream.primary_key[0]
        got = query(built, f'SELECT count(*), count(DISTINCT "{pk}"), '
                    + ", ".join(f'sum("{c}")' for c in cols) + f" FROM raw_redex.{stream.name}")[0]
        assert got[0] == got[1] == truth["counts"][stream.name]
        for col, value in zip(cols, got[2:], strict=True):
            assert isinstance(value, Decimal) and value == truth["sums"][stream.name][col], col
            assert value.as_tuple().exponent == -6  # decimal(18,6) kept every digit
    assert query(built, "SELECT count(*) FROM meta.quarantine WHERE provider = 'redex'") == [(0,)]


def test_direction_is_recorded_from_the_variant(built, truth):
    rows = query(built, "SELECT TransactionType, count(*), sum(Total), "
                        "count(*) FILTER (WHERE split_part(InvoiceNumber, '-', 2) = "
                        "CASE TransactionType WHEN 'AccountsPayable' THEN 'REAP' ELSE 'REAR' END) "
                        "FROM raw_redex.invoices GROUP BY 1 ORDER BY 1")
    assert rows == [(t, truth["by_direction"][t]["invoices"], truth["by_direction"][t]["Total"],
                     truth["by_direction"][t]["invoices"]) for t in sorted(R.DIRECTIONS)]


def test_both_status_forms_land_and_map(built, truth, sim):
    forms = dict(query(built, "SELECT json_type(Status), count(*) FROM raw_redex.invoices GROUP BY 1"))
    assert forms == {"VARCHAR": truth["status_forms"]["string"], "OBJECT": truth["status_forms"]["object"]}
    # The string form keeps its StatusDescription; the object form its Value/Description columns.
    assert query(built, "SELECT count(*) FROM raw_redex.invoices WHERE json_type(Status) = 'VARCHAR' "
                        "AND (StatusValue IS NOT NULL OR StatusDescription IS NULL)") == [(0,)]
    assert query(built, "SELECT count(*) FROM raw_redex.invoices WHERE json_type(Status) = 'OBJECT' "
                        "AND (StatusValue IS NULL OR StatusObjectDescription IS NULL)") == [(0,)]
    mapped = dict(query(built, "SELECT source_status, count(*) FROM staging.stg_redex__invoices GROUP BY 1"))
    assert mapped == {s: v["invoices"] for s, v in truth["by_status"].items()}
    # One invoice of each form maps to its own status.
    world = sim.state.world
    for legacy in (True, False):
        f = next(f for f in R.iter_invoices(world) if f.legacy is legacy)
        got = query(built, "SELECT source_status FROM staging.stg_redex__invoices WHERE invoice_id = ?",
                    [f.number])
        assert got == [(f.state(world.as_of)["status"],)]


def test_timestamps_are_utc_from_7_digit_fractions(built, sim):
    world = sim.state.world
    for legacy in (True, False):
        f = next(f for f in R.iter_invoices(world) if f.legacy is legacy and f.state(world.as_of)["paid_at"])
        issued, due, paid = query(built, "SELECT IssuedDate, DueDate, PaidDate FROM raw_redex.invoices "
                                         "WHERE InvoiceNumber = ?", [f.number])[0]
        # 2024-03: the full issue time (no Z, UTC); 2024-10: midnight of the issue day (Z).
        expected_issued = f.issued if legacy else f.issued.replace(hour=0, minute=0, second=0, microsecond=0)
        assert issued == expected_issued
        assert paid == f.state(world.as_of)["paid_at"]
        assert (due.date(), due.time().isoformat()) == (f.due, "23:59:59.999999")
        assert issued.utcoffset().total_seconds() == 0


# --- staging ------------------------------------------------------------------------------------------
def test_staging_sums_equal_truth(built, truth):
    inv = query(built, "SELECT count(*), sum(total_amount), sum(subtotal_amount + tax_amount), "
                       "sum(credit_amount) FROM staging.stg_redex__invoices")[0]
    assert inv[:2] == (truth["counts"]["invoices"], truth["sums"]["invoices"]["Total"])
    # subtotal (after fee) + tax = TotalReceivable, within a cent of Total per invoice (rounded apart).
    assert abs(inv[2] - inv[1]) < Decimal("0.01") * truth["counts"]["invoices"] and inv[3] == 0
    lines = query(built, "SELECT count(*), count(DISTINCT line_id), sum(line_total), sum(quantity) "
                         "FROM staging.stg_redex__invoice_lines")[0]
    assert lines == (truth["lines"]["rows"], truth["lines"]["rows"], truth["lines"]["TotalPrice"],
                     truth["lines"]["Quantity"])
    orders = query(built, "SELECT count(*), sum(total_amount) FROM staging.stg_redex__orders")[0]
    assert orders == (truth["counts"]["orders"], truth["orders_amount"])
    by_status = dict(query(built, "SELECT source_status, count(*) FROM staging.stg_redex__orders GROUP BY 1"))
    assert by_status == truth["orders_by_status"]


def test_receivables_from_staging_equal_truth(built, truth):
    void = ", ".join(f"'{s}'" for s in VOID)
    rows = query(built, f"""
        SELECT customer_id, currency,
               sum(CASE WHEN source_status NOT IN ({void}) THEN total_amount ELSE 0 END),
               sum(CASE WHEN source_status NOT IN ({void}) THEN amount_paid_reported ELSE 0 END),
               sum(CASE WHEN source_status NOT IN ({void})
                        THEN total_amount - amount_paid_reported - credit_amount ELSE 0 END)
        FROM staging.stg_redex__invoices WHERE direction = 'receivable' GROUP BY 1, 2""")
    keys = _customer_keys()
    got = {(keys[c], cur): {"invoiced": i, "paid": p, "open": o} for c, cur, i, p, o in rows}
    assert got == truth["receivables"]
    assert sum(v["paid"] for v in got.values()) > 0 and sum(v["open"] for v in got.values()) > 0


def test_customers_are_registration_numbers(built):
    ids = {r[0] for r in query(built, "SELECT DISTINCT customer_id FROM staging.stg_redex__invoices")}
    assert ids and ids <= set(_customer_keys())
    names = query(built, "SELECT DISTINCT customer_id, customer_name FROM staging.stg_redex__invoices")
    assert len(names) == len(ids)  # one name per id


# --- auth ---------------------------------------------------------------------------------------------
def test_token_expiring_mid_run_is_refreshed(fresh_sim, tmp_path):
    # Access tokens live 0.5 s: the run (~400 detail calls, 10 ms latency each) outlives several.
    fresh_sim.state.faults["redex"].update(token_ttl=0.5, latency_ms=10)
    manifest = extract(fresh_sim, "redex", "invoices", START, END, tmp_path)
    truth = fresh_sim.state.truth("redex")
    assert manifest["records"] == truth["counts"]["invoices"] and manifest["quarantined"] == 0
    calls = R.counters(fresh_sim.state)
    # One api-key grant, then the refresh token kept the run going.
    assert calls["api_key"] == 1 and calls["refresh"] >= 2 and calls["refused"] == 0


def test_refused_refresh_token_falls_back_to_a_new_grant(fresh_sim, tmp_path):
    c = client(fresh_sim, "redex")
    c.request_json("GET", "/public/v2/invoices", params={"ItemsPerPage": 1})  # a cached token
    fresh_sim.state.tokens["redex"].expire_all()  # access *and* refresh tokens are now expired
    spec = PROVIDERS["redex"]
    manifest = run_stream(c, spec, spec.stream("orders"), start=START, end=END, landing=tmp_path,
                          window_label="x", run_id="test")
    assert manifest["records"] == fresh_sim.state.truth("redex")["counts"]["orders"]
    calls = R.counters(fresh_sim.state)
    # 401 -> refresh refused -> a new api-key grant -> the request retried once.
    assert (calls["api_key"], calls["refresh"], calls["refused"]) == (2, 0, 1)
    assert c.stats.refreshes == 1


@pytest.mark.parametrize("override", [{"client_secret": "wrong-secret-0123"},
                                      {"api_key": "0badc0de-0000-4000-8000-000000000000"}])
def test_auth_failure_names_the_connection_never_the_secrets(sim, override):
    c = client(sim, "redex", **override)
    with pytest.raises(AuthError) as err:
        c.request_json("GET", "/public/v2/invoices")
    msg = str(err.value)
    assert msg == ("connection 'redex_default' was refused by POST /redex/public/v2/connect/token: HTTP 401 "
                   '({"Data":null,"Meta":null,"Errors":null,"StatusCode":401,"Message":"Unauthorized"}); '
                   "check the Client ID, Client Secret and API key stored in that Airflow connection")
    secrets = [*override.values(), *sim.state.credentials["redex"].values()]
    assert not any(s in msg for s in secrets)


def test_missing_api_key_is_named():
    conn = ConnInfo("redex_x", "http://127.0.0.1:9", login="id", password="secret")
    with pytest.raises(ValueError, match=r"connection 'redex_x' is missing extra api_key \(API key\)"):
        SPEC.auth(conn, lambda s: None)


def test_hook_and_connection_form(sim, monkeypatch):
    creds = sim.state.credentials["redex"]
    conn = {"conn_type": "redex", "host": sim.base_url("redex"), "login": creds["client_id"],
            "password": creds["client_secret"], "extra": {"api_key": creds["api_key"]}}
    monkeypatch.setenv("AIRFLOW_CONN_REDEX_DEFAULT", json.dumps(conn))
    assert RedexHook().test_connection() == (True, "Connected to REDEX")
    monkeypatch.setenv("AIRFLOW_CONN_REDEX_DEFAULT", json.dumps({**conn, "password": "nope-nope"}))
    ok, msg = RedexHook().test_connection()
    assert not ok and "'redex_default'" in msg and "nope-nope" not in msg
    info = SPEC.connection_type_info("invoice_warehouse.providers.redex.RedexHook")
    assert info["ui-field-behaviour"]["relabeling"] == {"host": "Base URL", "login": "Client ID",
                                                        "password": "Client Secret"}
    assert info["conn-fields"]["api_key"]["schema"] == {"type": ["string", "null"], "format": "password"}
    assert conn_info(sim, "redex").secrets() == [creds["client_secret"], creds["api_key"]]


# --- envelope and faults ------------------------------------------------------------------------------
def test_body_check_reads_the_envelope():
    ok = {"Data": [], "Meta": {}, "Errors": None, "StatusCode": 200, "Message": "Success"}
    assert body_check(ok) is None
    seed_400 = {"Data": None, "Errors": None, "Meta": None, "StatusCode": 400, "Message": "Bad request"}
    assert body_check(seed_400) == ("StatusCode 400 Bad request", False)
    assert body_check({**ok, "StatusCode": 503, "Message": "Busy"}) == ("StatusCode 503 Busy", True)
    assert body_check({**ok, "Errors": [{"Field": "X", "Message": "bad"}]}) == (
        'StatusCode 200 Success; Errors: [{"Field": "X", "Message": "bad"}]', False)
    assert body_check({"results": []}) == (
        "the response is not the REDEX envelope {Data, Meta, Errors, StatusCode, Message}", False)


def test_faults_and_duplicates_still_equal_truth(fresh_sim, tmp_path):
    # 429s (Retry-After 0), 5xx bursts, dropped connections, truncated JSON and HTML pages on every path
    # (token calls included), and duplicated records across pages: the load de-duplicates by key.
    fresh_sim.state.faults["redex"].update(rate=0.12, kinds=["429", "5xx", "drop", "malformed", "html"],
                                           retry_after=0, seed=3, duplicates=True)
    db = extract_and_load(fresh_sim, ["redex"], START, END, tmp_path)
    truth = fresh_sim.state.truth("redex")
    assert fresh_sim.state.faults["redex"].injected.get("5xx", 0) > 0
    for name in ("invoices", "orders"):
        cols = list(truth["sums"][name])
        got = query(db, f"SELECT count(*), {', '.join(f'sum({c})' for c in cols)} FROM raw_redex.{name}")[0]
        assert got == (truth["counts"][name], *truth["sums"][name].values())
    read = query(db, "SELECT sum(rows_read) FROM meta.load_audit WHERE provider = 'redex'")[0][0]
    assert read > truth["counts"]["invoices"] + truth["counts"]["orders"]  # duplicates were read, then merged


def test_daily_sweep_fetches_only_changed_invoices(fresh_sim, tmp_path):
    """The list is swept every day, but an invoice whose UpdatedTime has not moved since an earlier
    window's partition is neither fetched in detail nor landed again; the warehouse is the same."""
    landing, full_landing = tmp_path / "landing", tmp_path / "full"
    first = extract(fresh_sim, "redex", "invoices", START, END, landing, label="sweep-2025-03-14")
    assert first["unchanged_skipped"] == 0 and first["records"] == fresh_sim.state.truth("redex")["counts"]["invoices"]
    overhead = first["requests"] - first["pages"] - first["records"]  # the token grant
    fresh_sim.state.world.config.as_of = dt.datetime(2025, 3, 20, tzinfo=dt.timezone.utc)
    later = extract(fresh_sim, "redex", "invoices", START, END, landing, label="sweep-2025-03-19")
    full = extract(fresh_sim, "redex", "invoices", START, END, full_landing, label="sweep-2025-03-19",
                   full_refresh=True)
    assert full["unchanged_skipped"] == 0
    before = {r["InvoiceNumber"]: r["UpdatedTime"] for r in pq.read_table(
        landing / "redex/invoices/window=sweep-2025-03-14" / first["files"]["data"],
        columns=["InvoiceNumber", "UpdatedTime"]).to_pylist()}
    now = [(r["InvoiceNumber"], r["UpdatedTime"]) for r in pq.read_table(
        full_landing / "redex/invoices/window=sweep-2025-03-19" / full["files"]["data"],
        columns=["InvoiceNumber", "UpdatedTime"]).to_pylist()]
    changed = sorted(k for k, t in now if before.get(k) != t)
    assert 0 < len(changed) < len(now)
    assert later["records"] == len(changed) and later["unchanged_skipped"] == len(now) - len(changed)
    assert later["requests"] - later["pages"] - later["records"] == overhead  # no detail call for the rest
    landed = [r["InvoiceNumber"] for r in pq.read_table(
        landing / "redex/invoices/window=sweep-2025-03-19" / later["files"]["data"],
        columns=["InvoiceNumber"]).to_pylist()]
    assert sorted(landed) == changed
    # Loaded, the two daily partitions give exactly the raw table of a full re-extraction.
    cols = ", ".join(f'"{f.name}"' for f in SPEC.stream("invoices").schema.fields)
    dbs = {}
    for name, land in (("daily", landing), ("full", full_landing)):
        dbs[name] = tmp_path / f"{name}.duckdb"
        load_all(dbs[name], land, [SPEC], run_id="t", entities={"redex": ["invoices"]})
    assert query(dbs["daily"], f"SELECT {cols} FROM raw_redex.invoices ORDER BY 1") == \
        query(dbs["full"], f"SELECT {cols} FROM raw_redex.invoices ORDER BY 1")
    # The earliest partition never relies on another one: re-run, it lands every invoice again.
    again = extract(fresh_sim, "redex", "invoices", START, END, landing, label="sweep-2025-03-14")
    assert again["records"] == len(now) and again["unchanged_skipped"] == 0
