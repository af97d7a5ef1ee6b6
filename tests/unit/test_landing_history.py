"""A landing that grows a partition per entity every day: the daily run reads what is new, not the history.

``landed_markers`` keeps its fold of the earlier partitions (``MARKER_CACHE``) and reads only the
partitions after it; the load finds the new batches from the directory listing and reads only their
manifests (``manifest.Partition``).
"""

from __future__ import annotations

import json
import logging
import shutil
from decimal import Decimal

import pyarrow.parquet as pq

import invoice_warehouse.warehouse.load as load_module
from invoice_warehouse.engine.manifest import MANIFEST, list_partitions, read_manifest
from invoice_warehouse.engine.runner import MARKER_CACHE, landed_markers
from invoice_warehouse.engine.schema import record_digest
from invoice_warehouse.warehouse.load import load_all
from tests.helpers import query
from tests.unit.test_skip_unchanged import DAY1, DAY2, _run, _spec

DAY3 = [{"id": 1, "amount": Decimal("1.50"), "status": "paid"},
        {"id": 5, "amount": Decimal("5.00"), "status": "open"}]
DAY2_AGAIN = [{"id": 2, "amount": Decimal("2.00"), "status": "void"}]


def _three_days(landing):
    spec, stream = _spec()
    batches = {}
    for window, rows in (("2025-03-01", DAY1), ("2025-03-02", DAY2), ("2025-03-03", DAY3)):
        batches[window] = _run(landing, spec, stream, rows, window)["batch_id"]
    return spec, stream, batches


def _digests(*records):
    return {(str(r["id"]),): record_digest(r) for r in records}


def _count_opens(monkeypatch):
    """The Parquet files ``landed_markers`` opens, by name."""
    opened = []
    real = pq.ParquetFile

    def counting(path, *a, **kw):
        opened.append(str(path).rsplit("/", 2)[-2:])
        return real(path, *a, **kw)

    monkeypatch.setattr(pq, "ParquetFile", counting)
    return opened


def test_the_fold_of_earlier_partitions_is_kept_and_only_later_ones_are_read(tmp_path, monkeypatch):
    spec, stream, batches = _three_days(tmp_path)
    cache = tmp_path / "fake" / "things" / MARKER_CACHE
    # The run of 2025-03-03 folded the two days before it, and kept that fold.
    meta = pq.ParquetFile(cache).schema_arrow.metadata
    assert json.loads(meta[b"iwh_partitions"]) == {"2025-03-01": batches["2025-03-01"],
                                                   "2025-03-02": batches["2025-03-02"]}
    expected = {**_digests(*DAY1), **_digests(DAY2[1], DAY2[3]), **_digests(*DAY3)}
    opened = _count_opens(monkeypatch)
    assert landed_markers(tmp_path, "fake", stream, "2025-03-04") == expected
    # The fold, then the one partition after it: not the two days it holds.
    assert opened == [["things", MARKER_CACHE], ["window=2025-03-03", f"data-{batches['2025-03-03']}.parquet"]]
    assert json.loads(pq.ParquetFile(cache).schema_arrow.metadata[b"iwh_partitions"]) == batches
    # Nothing new since: the fold alone, and it is not written again.
    opened.clear()
    written = cache.stat().st_mtime_ns
    assert landed_markers(tmp_path, "fake", stream, "2025-03-04") == expected
    assert opened == [["things", MARKER_CACHE]] and cache.stat().st_mtime_ns == written
    # Without the fold, the same result from every partition.
    cache.unlink()
    assert landed_markers(tmp_path, "fake", stream, "2025-03-04") == expected


def test_a_window_run_again_or_an_older_window_reads_the_partitions_again(tmp_path, monkeypatch):
    spec, stream, batches = _three_days(tmp_path)
    landed_markers(tmp_path, "fake", stream, "2025-03-04")  # the fold now holds all three days
    # 2025-03-02 extracted again (a new batch, later than 2025-03-03's). Its run could not use the fold
    # (it holds 2025-03-02 and 2025-03-03, not before that window): it folded 2025-03-01 and kept that.
    again = _run(tmp_path, spec, stream, DAY2_AGAIN, "2025-03-02")
    assert again["records"] == 1
    cache = tmp_path / "fake" / "things" / MARKER_CACHE
    assert json.loads(pq.ParquetFile(cache).schema_arrow.metadata[b"iwh_partitions"]) == {
        "2025-03-01": batches["2025-03-01"]}
    opened = _count_opens(monkeypatch)
    assert landed_markers(tmp_path, "fake", stream, "2025-03-04") == {
        **_digests(*DAY1), **_digests(*DAY2_AGAIN), **_digests(*DAY3)}
    assert sorted(name[0] for name in opened) == ["things", "window=2025-03-02", "window=2025-03-03"]
    # A fold that holds a batch since replaced is not used: every partition is read.
    landed_markers(tmp_path, "fake", stream, "2025-03-04")
    again = _run(tmp_path / "other", spec, stream, DAY3, "2025-03-03")
    shutil.rmtree(tmp_path / "fake" / "things" / "window=2025-03-03")
    shutil.copytree(tmp_path / "other" / "fake" / "things" / "window=2025-03-03",
                    tmp_path / "fake" / "things" / "window=2025-03-03")
    opened.clear()
    assert landed_markers(tmp_path, "fake", stream, "2025-03-04") == {
        **_digests(*DAY1), **_digests(*DAY2_AGAIN), **_digests(*DAY3)}
    assert sorted(name[0] for name in opened) == ["things", "window=2025-03-01", "window=2025-03-02",
                                                 "window=2025-03-03"]
    # An older window than the fold's: only the partitions before it count.
    assert landed_markers(tmp_path, "fake", stream, "2025-03-02") == _digests(*DAY1)
    assert landed_markers(tmp_path, "fake", stream, "2025-03-01") == {}
    # The fold kept by that older run holds 2025-03-01 only; the later days are read after it.
    opened.clear()
    assert landed_markers(tmp_path, "fake", stream, "2025-03-04") == {
        **_digests(*DAY1), **_digests(*DAY2_AGAIN), **_digests(*DAY3)}
    assert sorted(name[0] for name in opened) == ["things", "window=2025-03-02", "window=2025-03-03"]


def test_an_unreadable_fold_is_said_and_replaced(tmp_path, caplog):
    spec, stream, batches = _three_days(tmp_path)
    cache = tmp_path / "fake" / "things" / MARKER_CACHE
    cache.write_bytes(b"not parquet")
    with caplog.at_level(logging.WARNING, logger="invoice_warehouse.engine.runner"):
        got = landed_markers(tmp_path, "fake", stream, "2025-03-04")
    assert got == {**_digests(*DAY1), **_digests(DAY2[1], DAY2[3]), **_digests(*DAY3)}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"{cache}: unreadable, reading the partitions instead"]
    assert json.loads(pq.ParquetFile(cache).schema_arrow.metadata[b"iwh_partitions"]) == batches


def test_the_listing_names_the_committed_batch_only_when_it_alone_can(tmp_path):
    spec, stream, batches = _three_days(tmp_path)
    base = tmp_path / "fake" / "things"
    day2 = base / "window=2025-03-02"
    # A re-run of 2025-03-02 stopped between its data file and its manifest: two data files.
    shutil.copy(day2 / f"data-{batches['2025-03-02']}.parquet", day2 / "data-20990101T000000000000-zzzz.parquet")
    (base / "window=2025-03-03" / MANIFEST).unlink()  # never committed
    (base / "window=2025-03-01" / "failed-quarantine-x.parquet").write_bytes(b"")
    parts = list_partitions(tmp_path, "fake", "things")
    assert [(p.window, p.batch, p.failed_quarantine) for p in parts] == [
        ("2025-03-01", batches["2025-03-01"], ("failed-quarantine-x.parquet",)),
        ("2025-03-02", None, ()), ("2025-03-03", None, ())]
    assert read_manifest(day2)["batch_id"] == batches["2025-03-02"]
    assert read_manifest(base / "window=2025-03-03") is None


def test_the_load_reads_the_manifests_of_new_batches_only(tmp_path, monkeypatch):
    spec, stream, batches = _three_days(tmp_path / "landing")
    db = tmp_path / "w.duckdb"
    load_all(db, tmp_path / "landing", [spec], run_id="t")
    read = []
    real = load_module.read_manifest

    def counting(part):
        read.append(part.name)
        return real(part)

    monkeypatch.setattr(load_module, "read_manifest", counting)
    # Nothing new: no manifest is read.
    [audit] = load_all(db, tmp_path / "landing", [spec], run_id="t")
    assert (read, audit["batches"]) == ([], 0)
    # A new day: its manifest alone.
    _run(tmp_path / "landing", spec, stream, DAY2_AGAIN, "2025-03-04")
    [audit] = load_all(db, tmp_path / "landing", [spec], run_id="t")
    assert (read, audit["batches"], audit["rows_updated"]) == (["window=2025-03-04"], 1, 1)
    assert query(db, "SELECT id, status FROM raw_fake.things ORDER BY id") == [
        ("1", "paid"), ("2", "void"), ("3", "open"), ("4", "open"), ("5", "open")]
    # A data file whose manifest is not written yet: the manifest is read, and nothing is loaded.
    read.clear()
    day4 = tmp_path / "landing" / "fake" / "things" / "window=2025-03-04"
    shutil.copy(next(day4.glob("data-*.parquet")), day4 / "data-20990101T000000000000-zzzz.parquet")
    [audit] = load_all(db, tmp_path / "landing", [spec], run_id="t")
    assert (read, audit["batches"]) == (["window=2025-03-04"], 0)
