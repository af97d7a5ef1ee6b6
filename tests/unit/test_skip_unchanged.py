"""Full sweeps that land only what changed: ``Stream.skip_unchanged_records`` (a digest of each record as
received, kept in ``_record_digest``) with a scripted API, window after window."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pyarrow.parquet as pq
import pytest

from invoice_warehouse.engine.paginate import PageNumberPaginator, SinglePaginator
from invoice_warehouse.engine.runner import landed_markers, run_stream
from invoice_warehouse.engine.schema import RECORD_DIGEST, Field, Schema, record_digest
from invoice_warehouse.engine.spec import Detail, ProviderSpec, Stream
from invoice_warehouse.warehouse.load import load_all
from tests.helpers import query
from tests.unit.fakes import T0, T1, FakeClient


def _spec(paginator=SinglePaginator, skip=True):
    stream = Stream(name="things", path="/things/", primary_key=("id",), records="", paginator=paginator,
                    skip_unchanged_records=skip,
                    schema=Schema.of(Field("id", required=True), Field("amount", "decimal(18,2)"), "status"))
    spec = ProviderSpec(name="fake", title="Fake", conn_type="fake", auth=lambda c, s: None,
                        streams=(stream,), max_concurrency=2)
    return spec, stream


def _run(landing, spec, stream, rows, window, **kw):
    client = FakeClient(lambda path, p: rows if "page" not in p else rows[(p["page"] - 1) * 2: p["page"] * 2])
    return run_stream(client, spec, stream, start=T0, end=T1, landing=landing, window_label=window,
                      run_id="t", **kw)


def _landed(landing, m):
    table = pq.read_table(landing / "fake" / "things" / f"window={m['window']}" / m["files"]["data"])
    return table.to_pylist()


DAY1 = [{"id": 1, "amount": Decimal("1.50"), "status": "open"},
        {"id": 2, "amount": Decimal("2.00"), "status": "open"},
        {"id": 3, "amount": Decimal("3.00"), "status": "open"}]
# Day 2: 1 unchanged (its keys listed in another order), 2 paid, 3 unchanged, 4 new.
DAY2 = [{"status": "open", "amount": Decimal("1.50"), "id": 1},
        {"id": 2, "amount": Decimal("2.00"), "status": "paid"},
        {"id": 3, "amount": Decimal("3.00"), "status": "open"},
        {"id": 4, "amount": Decimal("4.00"), "status": "open"}]


def test_record_digest_is_the_content_as_received():
    a = {"id": 1, "amount": Decimal("1.50"), "nested": {"b": [1, 2], "a": None}}
    assert record_digest(a) == record_digest({"nested": {"a": None, "b": [1, 2]}, "amount": Decimal("1.50"), "id": 1})
    assert len(record_digest(a)) == 32
    assert record_digest(a) != record_digest({**a, "amount": Decimal("1.5")})  # another text, another content
    assert record_digest(a) != record_digest({**a, "id": "1"})
    assert record_digest([1, 2]) is None and record_digest("x") is None and record_digest(None) is None


def test_a_daily_sweep_lands_only_the_new_and_changed_records(tmp_path):
    spec, stream = _spec()
    assert stream.schema.duckdb_columns()[-1] == (RECORD_DIGEST, "VARCHAR")
    first = _run(tmp_path, spec, stream, DAY1, "2025-03-01")
    assert (first["records"], first["unchanged_skipped"]) == (3, 0)
    day1 = _landed(tmp_path, first)
    assert [r[RECORD_DIGEST] for r in day1] == [record_digest(r) for r in DAY1]
    second = _run(tmp_path, spec, stream, DAY2, "2025-03-02")
    assert (second["records"], second["unchanged_skipped"], second["records_read"]) == (2, 2, 2)
    assert [(r["id"], r["status"]) for r in _landed(tmp_path, second)] == [("2", "paid"), ("4", "open")]
    # The earlier window vouches for the later one, never the other way round: re-run, day 1 lands all.
    again = _run(tmp_path, spec, stream, DAY2, "2025-03-01")
    assert (again["records"], again["unchanged_skipped"]) == (4, 0)
    # A full refresh lands everything, with its digests.
    full = _run(tmp_path / "full", spec, stream, DAY2, "2025-03-03", full_refresh=True)
    assert (full["records"], full["unchanged_skipped"]) == (4, 0)
    assert landed_markers(tmp_path, "fake", stream, "2025-03-03") == {
        ("1",): record_digest(DAY2[0]), ("2",): record_digest(DAY2[1]), ("3",): record_digest(DAY2[2]),
        ("4",): record_digest(DAY2[3])}


def test_the_daily_partitions_load_to_the_raw_table_of_a_full_extraction(tmp_path):
    spec, stream = _spec(lambda: PageNumberPaginator(page_size=2))
    daily, full = tmp_path / "daily", tmp_path / "full"
    _run(daily, spec, stream, DAY1, "2025-03-01")
    _run(daily, spec, stream, DAY2, "2025-03-02")
    _run(full, spec, stream, DAY2, "2025-03-02", full_refresh=True)
    got = {}
    for name, land in (("daily", daily), ("full", full)):
        db = tmp_path / f"{name}.duckdb"
        load_all(db, land, [spec], run_id="t")
        got[name] = query(db, f"SELECT id, amount, status, {RECORD_DIGEST} FROM raw_fake.things ORDER BY id")
    assert got["daily"] == got["full"]
    assert [(r[0], str(r[1]), r[2]) for r in got["daily"]] == [
        ("1", "1.50", "open"), ("2", "2.00", "paid"), ("3", "3.00", "open"), ("4", "4.00", "open")]


def test_a_page_of_unchanged_records_repeated_is_still_a_runaway(tmp_path):
    spec, stream = _spec(lambda: PageNumberPaginator(page_size=2))
    _run(tmp_path, spec, stream, DAY1[:2], "2025-03-01")
    client = FakeClient(lambda path, p: DAY1[:2])  # the API ignores the page parameter
    with pytest.raises(Exception, match="returned exactly the records of the previous page"):
        run_stream(client, spec, stream, start=T0, end=T1, landing=tmp_path, window_label="2025-03-02", run_id="t")


def test_bad_records_are_quarantined_again_and_partitions_without_digests_vouch_for_nothing(tmp_path):
    spec, stream = _spec()
    bad = [{"id": 1, "amount": "abc", "status": "open"}]
    first = _run(tmp_path, spec, stream, bad + DAY1[1:], "2025-03-01")
    assert (first["records"], first["quarantined"]) == (2, 1)
    second = _run(tmp_path, spec, stream, bad + DAY1[1:], "2025-03-02")
    assert (second["records"], second["quarantined"], second["unchanged_skipped"]) == (0, 1, 2)
    # A partition landed before the stream had digests (or by a stream without them) vouches for nothing.
    old_spec, old_stream = _spec(skip=False)
    assert RECORD_DIGEST not in old_stream.schema.names and old_stream.unchanged_marker is None
    _run(tmp_path / "old", old_spec, old_stream, DAY1, "2025-03-01")
    after = _run(tmp_path / "old", spec, stream, DAY1, "2025-03-02")
    assert (after["records"], after["unchanged_skipped"]) == (3, 0)


def test_one_way_to_skip_unchanged_records_per_stream():
    schema = Schema.of(Field("id", required=True), "UpdatedTime")
    with pytest.raises(ValueError, match="stream things: skip_unchanged_records and Detail.skip_unchanged are "
                                         "two ways to say the same; choose one"):
        Stream(name="things", path="/things/", primary_key=("id",), schema=schema, skip_unchanged_records=True,
               detail=Detail(path="/things/{id}", skip_unchanged="UpdatedTime"))
    marked = Stream(name="things", path="/things/", primary_key=("id",), schema=schema,
                    detail=Detail(path="/things/{id}", skip_unchanged="UpdatedTime"))
    assert marked.unchanged_marker == "UpdatedTime" and not marked.schema.record_digest
    assert dataclasses.replace(marked, detail=None, skip_unchanged_records=True).unchanged_marker == RECORD_DIGEST
