"""Every extract DAG and the warehouse DAG through dag.test() against the simulators.

A 3-day backfill of every provider (a manual run of each extract DAG over the date range, then the
warehouse DAG), run twice, gives the same published warehouse: every mart, and every raw table without
its extraction bookkeeping columns, compared row for row.
"""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest

from invoice_warehouse import config
from invoice_warehouse.registry import PROVIDERS
from tests.helpers import conn_info

pytestmark = pytest.mark.e2e
UTC = dt.timezone.utc
RANGE = {"date_start": "2025-03-01", "date_end": "2025-03-03"}
BOOKKEEPING = {"_extracted_at", "_run_id", "_batch_id"}
WINDOW = 1.0  # DealPOS's documented 50 requests / 180 s, scaled down to 50 / 1 s for the test


@pytest.fixture()
def connections(sim, monkeypatch):
    monkeypatch.setenv("IWH_RATE_WINDOW_SCALE", str(WINDOW / 180))
    dealpos = sim.state.faults.get("dealpos")
    before = dealpos.rate_limit if dealpos else None
    if dealpos:
        dealpos.update(rate_limit=(50, WINDOW))
    for name, spec in PROVIDERS.items():
        info = conn_info(sim, name)
        monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}_DEFAULT", json.dumps({
            "conn_type": spec.conn_type, "host": info.host, "login": info.login, "password": info.password,
            "extra": dict(info.extra)}))
    yield
    if dealpos:
        dealpos.update(rate_limit=before)


def snapshot(db) -> dict[str, list]:
    """Every marts table and every raw table (minus bookkeeping columns), sorted, row for row."""
    out = {}
    with duckdb.connect(str(db), read_only=True) as con:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND (table_schema = 'marts' OR table_schema LIKE 'raw_%') ORDER BY 1, 2").fetchall()
        for schema, table in tables:
            cols = [c for (c,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
                "ORDER BY ordinal_position", [schema, table]).fetchall() if c not in BOOKKEEPING]
            col_list = ", ".join(f'"{c}"' for c in cols)
            out[f"{schema}.{table}"] = con.execute(
                f'SELECT {col_list} FROM "{schema}"."{table}" ORDER BY ALL').fetchall()
    return out


def backfill(dagbag) -> None:
    for name in PROVIDERS:
        run = dagbag.dags[f"extract_{name}"].test(logical_date=dt.datetime(2025, 3, 4, tzinfo=UTC),
                                                  run_conf=RANGE)
        assert run.state == "success", name
    run = dagbag.dags["warehouse"].test(logical_date=dt.datetime(2025, 3, 4, tzinfo=UTC),
                                        run_conf={"as_of_date": "2025-03-15"})
    assert run.state == "success"


def test_three_day_backfill_twice_gives_the_same_warehouse(dagbag, sim, connections, data_dir):
    backfill(dagbag)
    first = snapshot(config.published_db())
    # Every provider landed one partition per day (or one sweep partition) for every entity.
    for name, spec in PROVIDERS.items():
        for stream in spec.streams:
            parts = sorted(p.name for p in (config.landing_dir() / name / stream.name).iterdir())
            expected = (["window=2025-03-01", "window=2025-03-02", "window=2025-03-03"]
                        if stream.window or stream.ids_from
                        else ["window=sweep-2025-03-03"])
            assert parts == expected, (name, stream.name)
    assert len(first["marts.fct_invoices"]) > 0
    providers_in_mart = {r[1] for r in first["marts.fct_invoices"]}
    assert providers_in_mart == {p for p in PROVIDERS if "invoices" in {s.name for s in PROVIDERS[p].streams}}

    backfill(dagbag)
    assert snapshot(config.published_db()) == first
