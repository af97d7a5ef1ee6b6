"""One parametrized suite over every provider x stream (the registry decides what runs):
a full extraction of a window equals the simulator's ground truth exactly, in records and in money."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import pytest

from invoice_warehouse.registry import PROVIDERS
from tests.helpers import extract

UTC = dt.timezone.utc
START, END = dt.datetime(2025, 3, 1, tzinfo=UTC), dt.datetime(2025, 3, 4, tzinfo=UTC)
STREAMS = [(p, s.name) for p, spec in PROVIDERS.items() for s in spec.streams]
# Money the API nests in line arrays (Akinon headers carry no total): summed from the landed JSON.
_NET = "list_sum(list_transform(json_transform({col}, '[{{\"net_amount\":\"DECIMAL(38,6)\"}}]'), lambda x: x.net_amount))"
DERIVED = {("akinon", "invoices", "total_amount"): _NET.format(col="invoiceitem_set"),
           ("akinon", "orders", "total_amount"): _NET.format(col="orderitem_set")}


@pytest.fixture()
def unthrottled(sim, monkeypatch):
    """DealPOS's documented 50 requests / 180 s, scaled to 50 / 0.5 s on both sides for the test."""
    monkeypatch.setenv("IWH_RATE_WINDOW_SCALE", str(0.5 / 180))
    faults = sim.state.faults.get("dealpos")
    before = faults.rate_limit if faults else None
    if faults:
        faults.update(rate_limit=(50, 0.5))
    yield
    if faults:
        faults.update(rate_limit=before)


@pytest.mark.parametrize(("provider", "stream"), STREAMS, ids=[f"{p}.{s}" for p, s in STREAMS])
def test_full_extract_equals_ground_truth(provider, stream, sim, unthrottled, tmp_path):
    spec = PROVIDERS[provider]
    for src in spec.stream(stream).ids_from:  # ids come from streams landed for the same window
        extract(sim, provider, src.stream, START, END, tmp_path)
    manifest = extract(sim, provider, stream, START, END, tmp_path)
    truth = sim.state.truth(provider, START, END)
    pk = ", ".join(f'"{c}"' for c in spec.stream(stream).primary_key)
    with duckdb.connect() as con:
        distinct = con.execute(f"SELECT count(DISTINCT ({pk})) FROM read_parquet(?)",
                               [manifest["data_path"] if "data_path" in manifest else
                                str(tmp_path / provider / stream / f"window={START.date()}" /
                                    manifest["files"]["data"])]).fetchone()[0]
        assert manifest["quarantined"] == 0
        assert distinct == truth["counts"][stream]
        for column, expected in truth.get("sums", {}).get(stream, {}).items():
            path = str(tmp_path / provider / stream / f"window={START.date()}" / manifest["files"]["data"])
            expr = DERIVED.get((provider, stream, column), f'"{column}"')
            got = con.execute(
                f'SELECT sum({expr}) FROM (SELECT * FROM read_parquet(?) '
                f"QUALIFY row_number() OVER (PARTITION BY {pk} ORDER BY _batch_id) = 1)", [path]).fetchone()[0]
            assert Decimal(got or 0) == Decimal(expected), column
