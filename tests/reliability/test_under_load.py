"""An analyst reads the published warehouse in a loop, in another process, while a build runs (load, dbt
build, publish): every read succeeds, each sees either the old warehouse or the new one (never a mix,
never the old one again after the new), and the build succeeds.

DuckDB opens a database file by path three times while it connects (a format check, the headers, then
the blocks). A connection opened at the instant of the publish's rename can read the old headers and
the new blocks and fail ("Failed to load metadata pointer"); docs/analysts.md tells analysts to connect
again, and the reader here does so once: at most one read may need it, and it then succeeds."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import subprocess
import sys
import time

import pytest

from invoice_warehouse import pipeline
from invoice_warehouse.registry import PROVIDERS
from tests.reliability import harness

pytestmark = pytest.mark.e2e

READER = """
import json, os, sys, time
import duckdb
path, stop, out = sys.argv[1:4]

def read():
    with duckdb.connect(path, read_only=True) as con:
        n, total = con.execute(
            "SELECT count(*), CAST(sum(total_amount) AS VARCHAR) FROM marts.fct_invoices").fetchone()
        loads = con.execute("SELECT count(*) FROM meta.load_audit").fetchone()[0]
    return [n, total, loads]

with open(out, "w") as fh:
    while not os.path.exists(stop):
        line = {}
        try:
            try:
                state = read()
            except duckdb.Error as exc:  # the open met the publish's rename: connect again (once)
                line["retried"] = repr(exc)[:300]
                state = read()
            line.update({"at": time.time(), "state": state})
        except Exception as exc:
            line.update({"at": time.time(), "error": repr(exc)})
        fh.write(json.dumps(line) + "\\n")
        fh.flush()
"""


def lines(path) -> list[dict]:
    """The reader's reads so far (a line being written is not one yet)."""
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(line) for line in text.split("\n")[:-1]]


def state(db) -> list:
    return list(harness.query(db, "SELECT count(*), CAST(sum(total_amount) AS VARCHAR), "
                                  "(SELECT count(*) FROM meta.load_audit) FROM marts.fct_invoices")[0])


def test_readers_never_fail_and_never_see_a_half_built_warehouse(rel_sim, clean_run, tmp_path):
    data = clean_run.copy(tmp_path / "data")
    stop, out = tmp_path / "stop", tmp_path / "reads.jsonl"
    with harness.running_pipeline(rel_sim, data):
        published = harness.published()
        old = state(published)
        # A new day lands first (extraction writes files only, never the warehouse).
        harness.extract("day-4", harness.END, harness.END + dt.timedelta(days=1))
        reader = subprocess.Popen([sys.executable, "-c", READER, str(published), str(stop), str(out)])
        try:
            deadline = time.monotonic() + 60
            while not lines(out) and time.monotonic() < deadline:
                time.sleep(0.05)  # the reader reads the old warehouse before the build starts
            started = time.time()
            pipeline.load("day-4")
            harness.build()
            pipeline.publish_warehouse()
            published_at = time.time()
            new = state(published)
            deadline = time.monotonic() + 60
            while new not in [r.get("state") for r in lines(out)] and time.monotonic() < deadline:
                time.sleep(0.1)  # ... and goes on until it has read the new one
        finally:
            stop.touch()
            reader.wait(timeout=60)
    reads = lines(out)
    errors = [r["error"] for r in reads if "error" in r]
    assert errors == [], f"{len(errors)} of {len(reads)} reads failed, the first: {errors[:1]}"
    retried = [r["retried"] for r in reads if "retried" in r]
    assert len(retried) <= 1, f"{len(retried)} reads had to connect again: {retried}"
    # The new warehouse has the new day's invoices and one more load audit row per entity.
    streams = sum(len(s.streams) for s in PROVIDERS.values())
    assert new[0] > old[0] and new[2] == old[2] + streams, f"old {old}, new {new}, {streams} streams"
    during = [r for r in reads if started <= r["at"] <= published_at]
    assert len(during) >= 10, f"{len(during)} reads in the {published_at - started:.1f}s of the build"
    seen = [r["state"] for r in reads]
    # What the reader saw, in order, as (state, how many reads in a row): the old one, then the new one.
    runs = [(s, len(list(g))) for s, g in itertools.groupby(seen)]
    assert [s for s, _ in runs] == [old, new], f"old {old}, new {new}; the reads saw {runs}"
