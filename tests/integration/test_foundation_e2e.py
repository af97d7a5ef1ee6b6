"""End to end on Akinon invoices: simulator -> extract DAG runs -> Parquet -> DuckDB -> dbt -> publish.

The mart's invoice count and total equal, exactly, what the simulator's generator says for the
extracted interval; running the same interval again leaves the mart unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import duckdb
import pytest

from tests.conftest import AS_OF

pytestmark = pytest.mark.e2e
UTC = dt.timezone.utc
# dag.test(logical_date=D) runs the data interval [D - 1 day, D) (data-interval timetable).
LOGICAL_DATES = [dt.datetime(2025, 3, d, tzinfo=UTC) for d in (2, 3, 4)]
WINDOW = (dt.datetime(2025, 3, 1, tzinfo=UTC), dt.datetime(2025, 3, 4, tzinfo=UTC))


@pytest.fixture()
def akinon_conn(sim, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AKINON_DEFAULT", json.dumps({
        "conn_type": "akinon", "host": sim.base_url("akinon"),
        "password": sim.state.credentials["akinon"]["token"]}))


def _mart(db) -> tuple:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT count(*), sum(total_amount), count(DISTINCT invoice_id) "
                           "FROM marts.fct_invoices WHERE provider = 'akinon'").fetchone()


def _mart_rows(db) -> list:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT * FROM marts.fct_invoices ORDER BY invoice_key").fetchall()


def test_akinon_invoices_end_to_end(dagbag, sim, akinon_conn, data_dir):
    from invoice_warehouse import config

    assert sim.state.world.as_of == AS_OF
    extract = dagbag.dags["extract_akinon"]
    warehouse = dagbag.dags["warehouse"]
    for logical in LOGICAL_DATES:
        run = extract.test(logical_date=logical)
        assert run.state == "success"
    run = warehouse.test(logical_date=LOGICAL_DATES[-1])
    assert run.state == "success"

    truth = sim.state.truth("akinon", *WINDOW)
    published = config.published_db()
    count, total, distinct = _mart(published)
    assert (count, distinct) == (truth["invoices"], truth["invoices"])
    assert total == truth["total_amount"]
    assert isinstance(total, Decimal)
    assert truth["invoices"] > 20  # the window really holds data

    # Three partitions, one per day, each with a manifest.
    parts = sorted(p.name for p in (config.landing_dir() / "akinon" / "invoices").iterdir())
    assert parts == ["window=2025-03-01", "window=2025-03-02", "window=2025-03-03"]

    before = _mart_rows(published)
    for logical in LOGICAL_DATES:
        assert extract.test(logical_date=logical).state == "success"
    assert warehouse.test(logical_date=LOGICAL_DATES[-1]).state == "success"
    assert _mart_rows(published) == before
    with duckdb.connect(str(published), read_only=True) as con:
        audits = con.execute("SELECT rows_inserted, rows_updated FROM meta.load_audit "
                             "WHERE provider = 'akinon' AND entity = 'invoices' ORDER BY loaded_at").fetchall()
    # First load inserted every invoice; the re-extraction replaced each with its newer extraction.
    assert audits == [(truth["invoices"], 0), (0, truth["invoices"])]
