"""IDH API Manager through the generic engine, the loader and dbt, against the simulator.

Every stream lands exactly what ``truth()`` says (counts and money, after de-duplication by key); the
order window is sliced into <= 30-day requests (the requests are recorded); products are fetched by the
ids landed in orders and returns; a ``success: false`` answer is a clear error that is not retried; a
refused token names the connection, never the token; duplicated rows dedupe to truth; and the dbt staging
models rebuild invoice totals, payments and receivables exactly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest

from invoice_warehouse.engine.http import ApiError, AuthError, HttpClient
from invoice_warehouse.engine.manifest import read_manifests
from invoice_warehouse.engine.runner import run_stream
from invoice_warehouse.providers.idh import SPEC, IdhHook
from invoice_warehouse.warehouse.dbt import run_dbt
from invoice_warehouse.warehouse.load import load_all
from simulators import idh
from simulators.world import customer_name
from tests.helpers import FAST_RETRY, client, conn_info, extract, query

UTC = dt.UTC
STREAMS = [s.name for s in SPEC.streams]
PK = {s.name: s.primary_key[0] for s in SPEC.streams}
START, END = dt.datetime(2025, 1, 1, tzinfo=UTC), dt.datetime(2025, 3, 15, tzinfo=UTC)  # 73 days
ZERO = Decimal("0.00")


class RecordingClient(HttpClient):
    """An HttpClient that remembers every request it was asked to make (path, params)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.calls: list[tuple[str, dict]] = []

    def request_json(self, method, path, *, params=None, json_body=None, headers=None):
        self.calls.append((path, dict(params or {})))
        return super().request_json(method, path, params=params, json_body=json_body, headers=headers)


def recording_client(sim) -> RecordingClient:
    real = client(sim, "idh")
    return RecordingClient(real.base_url, conn_id=real.conn_id, auth=real.auth, retry=FAST_RETRY,
                           body_check=SPEC.body_check)


def _landed(landing: Path, stream: str) -> list[dict]:
    rows = []
    for m in read_manifests(landing, "idh", stream):
        with duckdb.connect() as con:
            cur = con.execute("SELECT * FROM read_parquet(?)", [m["data_path"]])
            cols = [d[0] for d in cur.description]
            rows += [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    return rows


@pytest.fixture(scope="module")
def extracted(sim, tmp_path_factory):
    """Every IDH stream for [2025-01-01, 2025-03-15) through one recording client, loaded, dbt-built."""
    tmp = tmp_path_factory.mktemp("idh")
    landing, db = tmp / "landing", tmp / "work.duckdb"
    rec = recording_client(sim)
    manifests = {}
    for stream in SPEC.streams:  # in SPEC order: products after orders and returns
        manifests[stream.name] = run_stream(rec, SPEC, stream, start=START, end=END, landing=landing,
                                            window_label=START.date().isoformat(), run_id="test")
    load_all(db, landing, [SPEC], run_id="test")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IWH_DATA_DIR", str(tmp))
        run_dbt(["build", "--select", "path:models/staging/idh"], work_db=db)
    return SimpleNamespace(landing=landing, db=db, calls=rec.calls, manifests=manifests, world=sim.state.world,
                           truth=idh.truth(sim.state.world, START, END))


def test_spec_streams_and_windows():
    assert STREAMS == ["orders", "invoices", "payments", "customers", "returns", "products"]
    assert SPEC.stream("orders").window.max_days == 30
    assert SPEC.stream("customers").window is None  # the store list has no filter: full sweep
    assert [s.stream for s in SPEC.stream("products").ids_from] == ["orders", "returns"]
    assert SPEC.source_timezone == "Asia/Jakarta"
    info = SPEC.connection_type_info("invoice_warehouse.providers.idh.IdhHook")
    assert info["ui-field-behaviour"]["relabeling"] == {"host": "Base URL", "password": "API token"}


@pytest.mark.parametrize("stream", STREAMS)
def test_full_extraction_equals_truth(extracted, stream):
    truth = extracted.truth
    m = extracted.manifests[stream]
    assert (m["records"], m["quarantined"]) == (truth["counts"][stream], 0)
    rows = _landed(extracted.landing, stream)
    keys = [r[PK[stream]] for r in rows]
    assert len(set(keys)) == len(keys) == truth["counts"][stream]
    assert all(isinstance(k, str) for k in keys)  # ids are strings, even the returns' int ids
    for col, total in truth["sums"][stream].items():
        assert sum((r[col] for r in rows), ZERO) == total, col
        assert query(extracted.db, f"SELECT sum({col}) FROM raw_idh.{stream}")[0][0] == total, col


def test_orders_window_is_sliced_into_30_day_requests(extracted):
    # 73 days -> three requests of at most 30 days (local dates, end inclusive), each starting at page 1
    firsts = [p["date"] for path, p in extracted.calls if path == "/v1/order" and p["page"] == 1]
    assert firsts == ["01012025-30012025", "31012025-01032025", "02032025-14032025"]
    assert extracted.manifests["orders"]["slices"] == [
        "2025-01-01T00:00..2025-01-31T00:00", "2025-01-31T00:00..2025-03-02T00:00",
        "2025-03-02T00:00..2025-03-15T00:00"]
    for path, params in extracted.calls:
        if path == "/v1/order":
            first, last = (dt.datetime.strptime(d, "%d%m%Y") for d in params["date"].split("-"))
            assert (last - first).days <= 30


def test_fan_outs_and_variants_are_requested(extracted):
    calls, truth = extracted.calls, extracted.truth
    paths = [path for path, _ in calls]
    n_orders = truth["counts"]["orders"]
    assert sum(p.startswith("/v1/order/po/") and p.endswith("/ext") for p in paths) == n_orders
    assert sum(p.startswith("/v1/order/po/") and not p.endswith("/ext") for p in paths) == n_orders
    assert sum(p.startswith("/v1/invoice/detail/") for p in paths) == truth["counts"]["invoices"]
    assert sum(p.startswith("/v1/store/id/") for p in paths) == 40
    assert sum(p.startswith("/v1/product/id/") for p in paths) == truth["counts"]["products"]
    history = [params for path, params in calls if path == "/v1/invoice/payment/history"]
    assert {p["payment_type"] for p in history} == {"digital", "manually"}
    assert {p["unixtime_range"] for p in history} == {"1735664400-1741971599"}  # WIB 01-01 .. 14-03 inclusive
    assert all(p["p"] == p["page"] for p in history)  # beego reads p; both are sent


def test_landed_orders_keep_list_and_ext_totals(extracted):
    rows = {r["po"]: r for r in _landed(extracted.landing, "orders")}
    world = extracted.world
    world_orders = {f.po: f for f in idh.iter_orders(world, START.date(), END.date())}
    assert rows.keys() == world_orders.keys()
    differ = [po for po, r in rows.items() if r["total"] != r["ext_total"]]
    assert differ == [po for po, f in world_orders.items() if f.placed_total != f.ext_total(world.as_of)]
    assert differ  # the seed's quirk occurs
    r = rows[differ[0]]
    ext = json.loads(r["ext"])
    assert Decimal(str(ext["total"])) == r["ext_total"]
    assert r["date"].utcoffset() == dt.timedelta(0)
    assert r["created_on_date"] == r["date"].astimezone(dt.timezone(dt.timedelta(hours=7))).date()


def test_partial_window_equals_truth(sim, tmp_path):
    start, end = dt.datetime(2025, 2, 10, tzinfo=UTC), dt.datetime(2025, 2, 12, tzinfo=UTC)
    truth = idh.truth(sim.state.world, start, end)
    for stream in ("orders", "invoices", "payments", "returns", "products"):
        m = extract(sim, "idh", stream, start, end, tmp_path)
        assert m["records"] == truth["counts"][stream], stream
    assert truth["counts"]["products"] < len(idh.CATALOGUE)  # only the products these two days name
    products = {r["product_id"] for r in _landed(tmp_path, "products")}
    assert products == {p.product_id for p in idh.products_seen(sim.state.world, start.date(),
                                                                 (end - dt.timedelta(days=1)).date())}


def test_products_need_their_source_streams_landed_first(sim, tmp_path):
    with pytest.raises(RuntimeError, match=r"idh\.products: needs idh\.orders landed for window 2025-02-10 "
                                           r"first \(its ids come from orders\.detail\)"):
        extract(sim, "idh", "products", dt.datetime(2025, 2, 10, tzinfo=UTC),
                dt.datetime(2025, 2, 11, tzinfo=UTC), tmp_path)


def test_success_false_is_a_clear_error_that_is_not_retried(sim, tmp_path):
    c = client(sim, "idh")
    with pytest.raises(ApiError) as exc:
        c.request_json("GET", "/v1/invoice/detail/7690941911")
    assert str(exc.value) == ("connection 'idh_default': GET /idh/v1/invoice/detail/7690941911 answered with an "
                              "error: IDH said success=false: Data dengan nomer tagihan 7690941911 tidak ditemukan")
    assert (exc.value.status, exc.value.retryable, c.stats.requests, c.stats.retries) == (200, False, 1, 0)
    # An unsliced 59-day order window: IDH refuses it with HTTP 200, the stream fails at the first request.
    unsliced = dataclasses.replace(SPEC.stream("orders"),
                                   window=dataclasses.replace(SPEC.stream("orders").window, max_days=None))
    c = client(sim, "idh")
    with pytest.raises(ApiError, match="IDH said success=false: rentang tanggal maksimal 30 hari"):
        run_stream(c, SPEC, unsliced, start=START, end=dt.datetime(2025, 3, 1, tzinfo=UTC), landing=tmp_path,
                   window_label="x", run_id="test")
    assert (c.stats.requests, c.stats.retries) == (1, 0)
    assert not read_manifests(tmp_path, "idh", "orders")  # nothing committed


def test_refused_token_names_the_connection_never_the_token(sim, monkeypatch):
    secret = "wrong-idh-token-4711"
    c = client(sim, "idh", token=secret)
    with pytest.raises(AuthError) as exc:
        c.request_json("GET", "/v1/invoice")
    message = str(exc.value)
    assert "connection 'idh_default' was refused by GET /idh/v1/invoice: HTTP 401" in message
    assert "invalid token - error parse token" in message
    assert secret not in message
    assert (c.stats.requests, c.stats.retries) == (1, 0)
    # The hook's Test button: the same message, from the Airflow connection.
    info = conn_info(sim, "idh", token=secret)
    conn = SimpleNamespace(host=info.host, port=None, login=None, password=secret, extra_dejson={})
    monkeypatch.setattr(IdhHook, "get_connection", classmethod(lambda cls, conn_id: conn))
    ok, text = IdhHook().test_connection()
    assert not ok and "idh_default" in text and secret not in text
    conn.password = idh.CREDENTIALS["token"]
    assert IdhHook().test_connection() == (True, "Connected to IDH API Manager")


def test_duplicates_and_server_errors_dedupe_to_truth(fresh_sim, tmp_path):
    fresh_sim.state.faults["idh"].update(duplicates=True, rate=0.15, kinds=("5xx", "429", "malformed"), seed=3,
                                         retry_after=0)
    truth = idh.truth(fresh_sim.state.world, START, END)
    landing, db = tmp_path / "landing", tmp_path / "work.duckdb"
    streams = ["invoices", "payments", "customers"]  # lists of more than one page
    for stream in streams:
        m = extract(fresh_sim, "idh", stream, START, END, landing)
        assert m["records"] > truth["counts"][stream], stream  # repeated rows landed as sent
    injected = fresh_sim.state.faults["idh"].injected
    assert all(injected.get(k, 0) > 0 for k in ("5xx", "429", "malformed")), injected
    load_all(db, landing, [SPEC], run_id="test", entities={"idh": streams})
    for stream in streams:
        assert query(db, f"SELECT count(*), count(DISTINCT {PK[stream]}) FROM raw_idh.{stream}") == [
            (truth["counts"][stream], truth["counts"][stream])]
        for col, total in truth["sums"][stream].items():
            assert query(db, f"SELECT sum({col}) FROM raw_idh.{stream}")[0][0] == total


# --- staging ------------------------------------------------------------------------------------------
def test_staging_invoice_totals_and_paid_equal_truth(extracted):
    truth = extracted.truth
    rec = truth["receivables"]
    n, invoiced, paid, credit = query(extracted.db, "SELECT count(*), sum(total_amount), sum(amount_paid_reported), "
                                                    "sum(credit_amount) FROM staging.stg_idh__invoices")[0]
    assert n == truth["counts"]["invoices"]
    assert invoiced == truth["sums"]["invoices"]["subtotal"] == sum(v["invoiced"] for v in rec.values())
    assert paid == sum(v["paid"] for v in rec.values())
    assert credit == truth["sums"]["invoices"]["total_retur"]
    # the whole history is in the window: successful payment rows add up to what invoices report paid
    assert query(extracted.db, "SELECT sum(amount) FROM staging.stg_idh__payments")[0][0] == paid


def test_staging_receivables_equal_truth(extracted):
    rows = query(extracted.db, """
        SELECT customer_id, currency, sum(total_amount), sum(amount_paid_reported),
               sum(total_amount - amount_paid_reported - credit_amount)
        FROM staging.stg_idh__invoices GROUP BY 1, 2""")
    got = {(f"C{idh.customer_of(cid):03d}", cur): {"invoiced": i, "paid": p, "open": o}
           for cid, cur, i, p, o in rows}
    assert got == extracted.truth["receivables"]
    assert {idh.customer_id(int(k[0][1:])) for k in got} == {r[0] for r in rows}


def test_staging_invoice_lines_come_from_the_covered_orders(extracted):
    db = extracted.db
    mismatched = query(db, """
        WITH lines AS (
            SELECT invoice_id, sum(line_total) AS total FROM staging.stg_idh__invoice_lines GROUP BY 1)
        SELECT count(*) FROM staging.stg_idh__invoices i FULL JOIN lines USING (invoice_id)
        WHERE lines.total IS DISTINCT FROM i.total_amount""")
    assert mismatched == [(0,)]  # every invoice has lines, and they sum to its total
    world = extracted.world
    invoices = list(idh.iter_invoices(world, START.date(), dt.date(2025, 3, 14)))
    want_lines = sum(len(o.lines) for i in invoices for o in i.orders)
    assert query(db, "SELECT count(*), count(DISTINCT line_id), sum(line_total), min(line_number), "
                     "count(*) FILTER (WHERE product_id IS NULL) FROM staging.stg_idh__invoice_lines") == [
        (want_lines, want_lines, extracted.truth["sums"]["invoices"]["subtotal"], 1, 0)]
    n_lines, orders_total = query(db, "SELECT count(*), sum(line_total) FROM staging.stg_idh__order_lines")[0]
    orders = list(idh.iter_orders(world, START.date(), dt.date(2025, 3, 14)))
    assert n_lines == sum(len(f.lines) for f in orders) > want_lines  # open/cancelled orders are not billed
    assert orders_total == extracted.truth["sums"]["orders"]["ext_total"]


def test_staging_other_entities(extracted):
    db, truth, world = extracted.db, extracted.truth, extracted.world
    first, last = START.date(), dt.date(2025, 3, 14)
    assert query(db, "SELECT count(*), sum(total_amount) FROM staging.stg_idh__orders") == [
        (truth["counts"]["orders"], truth["sums"]["orders"]["ext_total"])]
    returns = list(idh.iter_returns(world, first, last))
    assert query(db, "SELECT count(*), sum(amount) FROM staging.stg_idh__returns") == [
        (truth["counts"]["returns"], sum((f.approved_value(world.as_of) for f in returns), ZERO))]
    assert query(db, "SELECT count(*), sum(unit_price) FROM staging.stg_idh__products") == [
        (truth["counts"]["products"], truth["sums"]["products"]["price"])]
    customers = query(db, "SELECT customer_id, customer_name, customer_type FROM staging.stg_idh__customers "
                          "ORDER BY customer_id")
    assert customers == sorted((idh.customer_id(n), customer_name(n), "store") for n in range(1, 41))
    assert query(db, "SELECT DISTINCT currency FROM staging.stg_idh__payments") == [("IDR",)]
