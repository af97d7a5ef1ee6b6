"""Akinon OMS through the generic engine and the loader, against the simulator: every stream lands exactly
what ``truth()`` says (counts and money), daily windows add up, page drift and duplicated records are
landed as the API sent them and resolved by key at load, and the dbt staging models rebuild the same
numbers (invoices, receivables, orders, products, customers).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from invoice_warehouse.engine.manifest import read_manifests
from invoice_warehouse.registry import PROVIDERS
from invoice_warehouse.warehouse.dbt import run_dbt
from invoice_warehouse.warehouse.load import load_all
from simulators import akinon
from simulators.world import EPOCH
from tests.helpers import extract, extract_and_load, query

UTC = dt.timezone.utc
SPEC = PROVIDERS["akinon"]
STREAMS = [s.name for s in SPEC.streams]
ITEMS = {"invoices": "invoiceitem_set", "orders": "orderitem_set"}  # the money of a record is in its items
ZERO = Decimal("0.00")


def _full_window(sim) -> tuple[dt.datetime, dt.datetime]:
    """[the business's first day, the day after the simulator's 'now'): everything that exists."""
    start = dt.datetime(EPOCH.year, EPOCH.month, EPOCH.day, tzinfo=UTC)
    end = dt.datetime.combine(sim.state.world.as_of.date() + dt.timedelta(days=1), dt.time(), UTC)
    return start, end


def _landed(landing: Path, stream: str) -> list[dict]:
    """Every row landed for ``stream`` (all windows), as dicts."""
    rows = []
    for m in read_manifests(landing, "akinon", stream):
        with duckdb.connect() as con:
            cur = con.execute("SELECT * FROM read_parquet(?)", [m["data_path"]])
            cols = [d[0] for d in cur.description]
            rows += [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    return rows


def _total(rows: list[dict], stream: str) -> Decimal:
    items = [i for r in rows for i in json.loads(r[ITEMS[stream]], parse_float=Decimal)]
    return sum((Decimal(i["net_amount"]) for i in items), ZERO)


def test_spec_declares_the_three_streams():
    assert STREAMS == ["invoices", "orders", "stock_locations"]
    assert SPEC.stream("stock_locations").window is None  # full sweep: the endpoint has no filter
    for name in ("invoices", "orders"):
        assert SPEC.stream(name).window is not None


@pytest.mark.parametrize("stream", STREAMS)
def test_full_extraction_equals_truth(sim, tmp_path, stream):
    start, end = _full_window(sim)
    truth = akinon.truth(sim.state.world, start, end)
    manifest = extract(sim, "akinon", stream, start, end, tmp_path)
    assert manifest["records"] == truth["counts"][stream]
    assert manifest["quarantined"] == 0
    rows = _landed(tmp_path, stream)
    assert len({r["id"] for r in rows}) == len(rows) == truth["counts"][stream]
    assert all(isinstance(r["id"], str) for r in rows)
    if stream in truth["sums"]:
        assert _total(rows, stream) == truth["sums"][stream]["total_amount"]
        assert all(r["modified_date"].tzinfo is not None and r["modified_date"].utcoffset() == dt.timedelta(0)
                   for r in rows)
    if stream == "stock_locations":
        assert sorted(r["id"] for r in rows) == truth["stock_location_ids"]


@pytest.mark.parametrize("stream", ["invoices", "orders"])
def test_daily_windows_add_up_to_truth(sim, tmp_path, stream):
    start = dt.datetime(2025, 3, 10, tzinfo=UTC)
    for n in range(3):
        s, e = start + dt.timedelta(days=n), start + dt.timedelta(days=n + 1)
        want = akinon.truth(sim.state.world, s, e)
        manifest = extract(sim, "akinon", stream, s, e, tmp_path, label=s.date().isoformat())
        assert manifest["records"] == want["counts"][stream]
    rows = _landed(tmp_path, stream)
    want = akinon.truth(sim.state.world, start, start + dt.timedelta(days=3))
    assert len(rows) == len({r["id"] for r in rows}) == want["counts"][stream]
    assert _total(rows, stream) == want["sums"][stream]["total_amount"]


@pytest.mark.parametrize("fault,streams", [
    ("drift", ["invoices", "orders"]),  # an unpaged list has no pages to drift
    ("duplicates", ["invoices", "orders", "stock_locations"]),
])
def test_faults_land_duplicates_that_dedupe_by_key_to_truth(fresh_sim, tmp_path, fault, streams):
    fresh_sim.state.faults["akinon"].update(**{fault: True})
    start, end = dt.datetime(2025, 2, 1, tzinfo=UTC), dt.datetime(2025, 3, 1, tzinfo=UTC)  # several pages
    truth = akinon.truth(fresh_sim.state.world, start, end)
    landing, db = tmp_path / "landing", tmp_path / "work.duckdb"
    for stream in streams:
        extract(fresh_sim, "akinon", stream, start, end, landing)
        rows = _landed(landing, stream)
        distinct = {r["id"]: r for r in rows}
        assert len(rows) > len(distinct) == truth["counts"][stream], stream
        if stream in ITEMS:
            assert truth["counts"][stream] > 2 * SPEC.stream(stream).paginator().page_size
        if stream in truth["sums"]:
            assert _total(list(distinct.values()), stream) == truth["sums"][stream]["total_amount"]
    load_all(db, landing, [SPEC], run_id="test", entities={"akinon": streams})
    for stream in streams:
        assert query(db, f"SELECT count(*), count(DISTINCT id) FROM raw_akinon.{stream}") == [
            (truth["counts"][stream], truth["counts"][stream])]
        if stream in ITEMS:
            got = query(db, f"SELECT sum(list_sum(list_transform(json_transform({ITEMS[stream]}, "
                            "'[{\"net_amount\":\"DECIMAL(38,6)\"}]'), lambda x: x.net_amount))) "
                            f"FROM raw_akinon.{stream}")[0][0]
            assert got == truth["sums"][stream]["total_amount"]


# --- staging ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def staged(sim, tmp_path_factory):
    """Every Akinon stream extracted, loaded and built by dbt (staging/akinon only) once per module."""
    tmp = tmp_path_factory.mktemp("akinon_staging")
    start, end = _full_window(sim)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IWH_DATA_DIR", str(tmp))
        db = extract_and_load(sim, ["akinon"], start, end, tmp)
        run_dbt(["build", "--select", "path:models/staging/akinon"], work_db=db)
    return db, akinon.truth(sim.state.world, start, end)


def test_staging_invoices_and_lines_equal_truth(staged):
    db, truth = staged
    n, total, lines = query(db, "SELECT count(*), sum(total_amount), (SELECT count(*) FROM "
                                "staging.stg_akinon__invoice_lines) FROM staging.stg_akinon__invoices")[0]
    assert (n, total, lines) == (truth["counts"]["invoices"], truth["sums"]["invoices"]["total_amount"],
                                 truth["invoice_lines"])
    by_status = query(db, "SELECT source_status, count(*), sum(total_amount) FROM staging.stg_akinon__invoices "
                          "GROUP BY 1 ORDER BY 1")
    assert by_status == [(s, v["invoices"], v["total_amount"]) for s, v in sorted(truth["by_status"].items())]


def test_staging_receivables_equal_truth(staged):
    db, truth = staged
    rows = query(db, """
        SELECT customer_id, currency,
               sum(total_amount) FILTER (WHERE source_status <> 'cancelled') AS invoiced,
               sum(amount_paid_reported) AS paid
        FROM staging.stg_akinon__invoices GROUP BY 1, 2""")
    got = {}
    for cid, cur, invoiced, paid in rows:
        invoiced = invoiced or ZERO
        got[(f"C{int(cid):03d}", cur)] = {"invoiced": invoiced, "paid": paid, "open": invoiced - paid}
    assert got == truth["receivables"]
    assert {akinon.customer_id(int(k[0][1:])) for k in truth["receivables"]} == {r[0] for r in rows}


def test_staging_orders_equal_truth_and_match_invoices(staged):
    db, truth = staged
    n, total, currencies = query(db, "SELECT count(*), sum(total_amount), list(DISTINCT currency) "
                                     "FROM staging.stg_akinon__orders")[0]
    assert (n, total, currencies) == (truth["counts"]["orders"], truth["sums"]["orders"]["total_amount"],
                                      ["TRY"])
    mismatched = query(db, """
        SELECT count(*) FROM staging.stg_akinon__orders o
        FULL JOIN raw_akinon.invoices i ON i.order_id = o.order_id
        WHERE o.order_id IS NULL OR i.id IS NULL OR o.customer_id <> i.order_customer_id
           OR o.total_amount <> (SELECT total_amount FROM staging.stg_akinon__invoices s WHERE s.invoice_id = i.id)
           OR o.source_status <> i.order_state""")
    assert mismatched == [(0,)]


def test_staging_products_are_deduplicated_to_the_latest_price(staged):
    db, truth = staged
    rows = query(db, "SELECT product_id, sku, product_name, unit_price, currency FROM staging.stg_akinon__products")
    assert {r[0]: (r[1], r[2], r[3], r[4]) for r in rows} == {
        pid: (p["sku"], p["name"], p["price"], "TRY") for pid, p in truth["products"].items()}
    sold = query(db, "SELECT count(*) FROM (SELECT unnest(json_transform(orderitem_set, '[\"JSON\"]')) "
                     "FROM raw_akinon.orders)")[0][0]
    assert sold == truth["order_items"] > len(rows)  # a product is in many order items, once here


def test_staging_customers_are_stock_locations_and_order_customer_ids(staged):
    db, truth = staged
    rows = query(db, "SELECT customer_type, customer_id, customer_name FROM staging.stg_akinon__customers")
    by_type: dict[str, list[str]] = {}
    for kind, cid, _ in rows:
        by_type.setdefault(kind, []).append(cid)
    assert {k: sorted(v) for k, v in by_type.items()} == {
        "stock_location": truth["stock_location_ids"], "customer": truth["order_customers"]}
    names = {cid: name for kind, cid, name in rows if kind == "stock_location"}
    assert names == {str(sid): name for sid, name, *_ in akinon.STOCK_LOCATIONS
                     if str(sid) in truth["stock_location_ids"]}
    assert all(name is None for kind, _, name in rows if kind == "customer")
