"""The daily full sweeps that land only what changed (``Stream.skip_unchanged_records``): REDEX spot
transactions, Shopwave invoices and orders, against their simulators. A sweep one week later lands
exactly the records whose content changed or that are new, and the two partitions load to the raw table
of a full re-extraction."""

from __future__ import annotations

import datetime as dt

import pyarrow.parquet as pq
import pytest

from invoice_warehouse.engine.schema import RECORD_DIGEST
from invoice_warehouse.registry import PROVIDERS
from invoice_warehouse.warehouse.load import load_all
from tests.helpers import day, extract, query

START, END = day("2025-03-14"), day("2025-03-15")  # any window: these lists have no date filter
SWEEPS = [("redex", "orders"), ("shopwave", "invoices"), ("shopwave", "orders")]


def test_the_full_sweeps_are_the_streams_that_skip_unchanged_records():
    assert sorted((p, s.name) for p, spec in PROVIDERS.items() for s in spec.streams
                  if s.skip_unchanged_records) == sorted(SWEEPS)


def _rows(landing, provider, stream, manifest, columns):
    path = landing / provider / stream / f"window={manifest['window']}" / manifest["files"]["data"]
    return pq.read_table(path, columns=columns).to_pylist()


@pytest.mark.parametrize(("provider", "stream"), SWEEPS)
def test_a_sweep_a_week_later_lands_exactly_what_changed(fresh_sim, tmp_path, provider, stream):
    spec = PROVIDERS[provider]
    fields = spec.stream(stream).schema.names
    key = spec.stream(stream).primary_key[0]
    landing, full_landing = tmp_path / "landing", tmp_path / "full"
    first = extract(fresh_sim, provider, stream, START, END, landing, label="sweep-2025-03-14")
    assert first["unchanged_skipped"] == 0 and first["records"] > 0
    fresh_sim.state.world.config.as_of = dt.datetime(2025, 3, 21, tzinfo=dt.timezone.utc)
    later = extract(fresh_sim, provider, stream, START, END, landing, label="sweep-2025-03-21")
    full = extract(fresh_sim, provider, stream, START, END, full_landing, label="sweep-2025-03-21",
                   full_refresh=True)
    assert full["unchanged_skipped"] == 0
    before = {r[key]: r for r in _rows(landing, provider, stream, first, fields)}
    now = _rows(full_landing, provider, stream, full, fields)
    changed = sorted(r[key] for r in now if before.get(r[key]) != r)
    assert 0 < len(changed) < len(now)
    assert (later["records"], later["unchanged_skipped"]) == (len(changed), len(now) - len(changed))
    assert sorted(r[key] for r in _rows(landing, provider, stream, later, [key])) == changed
    # Loaded, the two partitions give exactly the raw table of the full re-extraction, digests included.
    cols = ", ".join(f'"{c}"' for c in [*fields, RECORD_DIGEST])
    got = {}
    for name, land in (("daily", landing), ("full", full_landing)):
        db = tmp_path / f"{name}.duckdb"
        load_all(db, land, [spec], run_id="t", entities={provider: [stream]})
        got[name] = query(db, f"SELECT {cols} FROM raw_{provider}.{stream} ORDER BY 1")
    assert got["daily"] == got["full"] and len(got["full"]) == len(now)
