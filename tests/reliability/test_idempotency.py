"""Running again changes nothing: the same interval three times, and two overlapping backfills, each
give exactly the warehouse of one clean run (every mart, intermediate and staging model, raw table)."""

from __future__ import annotations

import datetime as dt

import pytest

from invoice_warehouse import config, pipeline
from invoice_warehouse.registry import PROVIDERS
from tests.reliability import harness

pytestmark = pytest.mark.e2e
DAY = dt.timedelta(days=1)


def test_the_same_interval_three_times_gives_the_clean_warehouse(rel_sim, clean_run, tmp_path):
    """Run 1 is the clean run itself (a copy of its data dir). Runs 2 and 3 extract and load the same three
    days again; the warehouse DAG (Asset-triggered, one active run) builds after run 3, on top of run 1's
    build (dbt's incremental marts included), and publishes."""
    data = clean_run.copy(tmp_path / "data")
    raw = {t: rows for t, rows in clean_run.snapshot.items() if t.startswith("raw_")}
    with harness.running_pipeline(rel_sim, data):
        for n in (2, 3):
            extracted = harness.extract(f"run-{n}")
            audits = pipeline.load(f"run-{n}")
            # Every record was read again and replaced its older extraction: nothing inserted twice.
            assert [(a["provider"], a["entity"], a["rows_inserted"], a["rows_updated"]) for a in audits] == [
                (p, s.name, 0, len(raw[f"raw_{p}.{s.name}"])) for p, spec in PROVIDERS.items() for s in spec.streams]
            assert [e["records"] for e in extracted] == [e["records"] for e in clean_run.extracted]
            assert harness.snapshot(config.work_db(), harness.RAW) == raw
        harness.build()
        pipeline.publish_warehouse()
        harness.assert_same_warehouse(harness.snapshot(harness.published()), clean_run.snapshot)
        loads = harness.query(harness.published(), "SELECT run_id, count(*) FROM meta.load_audit GROUP BY 1 ORDER BY 1")
    streams = sum(len(s.streams) for s in PROVIDERS.values())
    assert loads == [("clean", streams), ("run-2", streams), ("run-3", streams)]


def test_two_overlapping_backfills_give_the_clean_warehouse(rel_sim, clean_run, tmp_path):
    start, end = harness.START, harness.END
    with harness.running_pipeline(rel_sim, tmp_path / "data"):
        # Backfill A: days 1-2; backfill B: days 2-3 (day 2 twice); then the warehouse DAG.
        harness.extract("backfill-a", start, start + 2 * DAY)
        first = pipeline.load("backfill-a")
        harness.extract("backfill-b", start + DAY, end)
        second = pipeline.load("backfill-b")
        harness.build()
        pipeline.publish_warehouse()
        got = harness.snapshot(harness.published())
    # Day 2 came twice: the second time its records replaced the first extraction's (updates).
    assert sum(a["rows_inserted"] for a in first) > 0
    assert sum(a["rows_updated"] for a in second) > 0
    harness.assert_same_warehouse(got, clean_run.snapshot)
