"""The DuckDB load: merge by key, latest extraction wins, idempotent, schema evolution, quarantine,
audit; and the atomic publish that never blocks or confuses a reader."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import duckdb
import pytest

from invoice_warehouse.engine.landing import PartitionWriter
from invoice_warehouse.engine.schema import Field, Schema
from invoice_warehouse.warehouse.load import load_entity
from invoice_warehouse.warehouse.publish import publish

UTC = dt.timezone.utc
SCHEMA = Schema.of(Field("id", required=True), Field("amount", "decimal(18,2)"))


def land(tmp, window, rows, at, schema=SCHEMA, quarantine=()):
    w = PartitionWriter(tmp / "landing", "p", "things", window, schema, "run", at)
    w.write([schema.parse(r) for r in rows])
    for raw, reason in quarantine:
        w.quarantine(raw, reason, "/things")
    return w.commit({"pages": 1})


def load(con, tmp):
    return load_entity(con, tmp / "landing", "p", "things", ("id",), run_id="r")


def table(con):
    return con.execute("SELECT id, amount FROM raw_p.things ORDER BY id").fetchall()


def test_merge_latest_wins_and_reload_is_idempotent(tmp_path):
    t1, t2 = dt.datetime(2025, 3, 1, tzinfo=UTC), dt.datetime(2025, 3, 2, tzinfo=UTC)
    land(tmp_path, "2025-03-01", [{"id": 1, "amount": "1.00"}, {"id": 2, "amount": "2.00"},
                                  {"id": 2, "amount": "2.50"}], t1)  # a duplicate within the partition
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    a = load(con, tmp_path)
    assert (a["rows_read"], a["rows_inserted"], a["rows_updated"], a["rows_unchanged"]) == (3, 2, 0, 1)
    assert len(table(con)) == 2
    # The same partitions again: nothing changes.
    a = load(con, tmp_path)
    assert (a["batches"], a["rows_read"], a["rows_inserted"], a["rows_updated"]) == (0, 0, 0, 0)
    # A newer extraction of id 1 (next day's window) wins; a new id is inserted.
    land(tmp_path, "2025-03-02", [{"id": 1, "amount": "1.10"}, {"id": 3, "amount": "3.00"}], t2)
    a = load(con, tmp_path)
    assert (a["rows_inserted"], a["rows_updated"]) == (1, 1)
    assert table(con)[0] == ("1", Decimal("1.10"))
    assert [r[0] for r in table(con)] == ["1", "2", "3"]


def test_an_older_extraction_never_overwrites_a_newer_one(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    land(tmp_path, "2025-03-02", [{"id": 1, "amount": "9.99"}], dt.datetime(2025, 3, 2, tzinfo=UTC))
    load(con, tmp_path)
    land(tmp_path, "2025-03-01", [{"id": 1, "amount": "1.00"}], dt.datetime(2025, 3, 1, tzinfo=UTC))
    a = load(con, tmp_path)
    assert (a["rows_read"], a["rows_updated"], a["rows_unchanged"]) == (1, 0, 1)
    assert table(con) == [("1", Decimal("9.99"))]


def test_new_columns_are_added_and_quarantine_is_kept_with_reasons(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    land(tmp_path, "2025-03-01", [{"id": 1, "amount": "1.00"}], dt.datetime(2025, 3, 1, tzinfo=UTC))
    load(con, tmp_path)
    wider = Schema.of(Field("id", required=True), Field("amount", "decimal(18,2)"), Field("note"))
    land(tmp_path, "2025-03-02", [{"id": 2, "amount": "2.00", "note": "new field"}],
         dt.datetime(2025, 3, 2, tzinfo=UTC), schema=wider,
         quarantine=[('{"id": 3, "amount": "x"}', "field 'amount': 'x' is not a number")])
    a = load(con, tmp_path)
    assert a["rows_quarantined"] == 1
    assert con.execute("SELECT id, note FROM raw_p.things ORDER BY id").fetchall() == [("1", None), ("2", "new field")]
    assert con.execute("SELECT entity, reason, raw FROM meta.quarantine").fetchall() == [
        ("things", "field 'amount': 'x' is not a number", '{"id": 3, "amount": "x"}')]
    audit = con.execute("SELECT windows, rows_inserted, rows_quarantined FROM meta.load_audit ORDER BY loaded_at").fetchall()
    assert audit == [("2025-03-01", 1, 0), ("2025-03-02", 1, 1)]


def test_publish_swaps_atomically_under_an_open_reader(tmp_path):
    work, pub = tmp_path / "work.duckdb", tmp_path / "pub.duckdb"
    with duckdb.connect(str(work)) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS v")
    publish(work, pub)
    reader = duckdb.connect(str(pub), read_only=True)
    assert reader.execute("SELECT v FROM t").fetchall() == [(1,)]
    with duckdb.connect(str(work)) as con:
        con.execute("UPDATE t SET v = 2")
    publish(work, pub)  # the reader holds the old file: the build is not blocked
    assert reader.execute("SELECT v FROM t").fetchall() == [(1,)]
    reader.close()
    with duckdb.connect(str(pub), read_only=True) as fresh:
        assert fresh.execute("SELECT v FROM t").fetchall() == [(2,)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pub.duckdb", "work.duckdb"]


def test_publish_without_a_work_file_fails_and_leaves_the_published_one(tmp_path):
    pub = tmp_path / "pub.duckdb"
    with duckdb.connect(str(pub)) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS v")
    with pytest.raises(FileNotFoundError, match="no working warehouse"):
        publish(tmp_path / "missing.duckdb", pub)
    with duckdb.connect(str(pub), read_only=True) as con:
        assert con.execute("SELECT v FROM t").fetchall() == [(1,)]


def test_reader_in_a_loop_during_publishes_always_succeeds(tmp_path):
    work, pub = tmp_path / "work.duckdb", tmp_path / "pub.duckdb"
    with duckdb.connect(str(work)) as con:
        con.execute("CREATE TABLE t AS SELECT range AS v FROM range(1000)")
    publish(work, pub)
    stop, seen, errors = threading.Event(), [], []

    def read():
        while not stop.is_set():
            try:
                with duckdb.connect(str(pub), read_only=True) as r:
                    seen.append(r.execute("SELECT count(*) FROM t").fetchone()[0])
            except Exception as exc:  # noqa: BLE001 - the test collects every failure
                errors.append(repr(exc))

    th = threading.Thread(target=read)
    th.start()
    for n in range(2, 12):
        with duckdb.connect(str(work)) as con:
            con.execute(f"CREATE OR REPLACE TABLE t AS SELECT range AS v FROM range({n * 1000})")
        publish(work, pub)
    stop.set()
    th.join()
    assert errors == []
    assert len(seen) > 0 and set(seen) <= {n * 1000 for n in range(1, 12)}


def test_load_task_caps_duckdb_memory_and_still_merges(tmp_path, monkeypatch):
    """The load task asks DuckDB for 128MB by default (IWH_DUCKDB_MEMORY_LIMIT overrides it); a merge
    larger than a tight cap still gives the exact result (DuckDB spills)."""
    from types import SimpleNamespace

    from invoice_warehouse import config
    from invoice_warehouse.warehouse.load import load_all

    monkeypatch.delenv("IWH_DUCKDB_MEMORY_LIMIT", raising=False)
    monkeypatch.delenv("IWH_DUCKDB_THREADS", raising=False)
    assert config.duckdb_config() == {"memory_limit": "128MB", "preserve_insertion_order": "false"}
    monkeypatch.setenv("IWH_DUCKDB_THREADS", "1")
    monkeypatch.setenv("IWH_DUCKDB_MEMORY_LIMIT", "24MB")
    assert config.duckdb_config() == {"memory_limit": "24MB", "preserve_insertion_order": "false", "threads": "1"}
    pad = "x" * 400  # wide rows, so that the batch is larger than the cap
    wide = Schema.of(Field("id", required=True), Field("amount", "decimal(18,2)"), Field("note"))
    spec = SimpleNamespace(name="p", streams=[SimpleNamespace(name="things", primary_key=("id",), schema=wide)])
    land(tmp_path, "2025-03-01", [{"id": i, "amount": "1.00", "note": pad} for i in range(60_000)],
         dt.datetime(2025, 3, 1, tzinfo=UTC), schema=wide)
    db = tmp_path / "w.duckdb"
    (a,) = load_all(db, tmp_path / "landing", [spec], run_id="r1")
    assert (a["rows_inserted"], a["rows_updated"]) == (60_000, 0)
    land(tmp_path, "2025-03-02", [{"id": i, "amount": "2.00", "note": pad} for i in range(30_000, 90_000)],
         dt.datetime(2025, 3, 2, tzinfo=UTC), schema=wide)
    (a,) = load_all(db, tmp_path / "landing", [spec], run_id="r2")
    assert (a["rows_read"], a["rows_inserted"], a["rows_updated"]) == (60_000, 30_000, 30_000)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*), sum(amount) FROM raw_p.things").fetchone() == (90_000, Decimal("150000.00"))


def test_empty_raw_tables_have_the_types_of_the_landed_parquet(tmp_path):
    # ensure_table creates a stream's raw table from Schema.duckdb_columns() (no Arrow in the load task):
    # the same column types DuckDB gives the landed Parquet, for every stream of every provider.
    import pyarrow as pa
    import pyarrow.parquet as pq

    from invoice_warehouse.registry import PROVIDERS
    from invoice_warehouse.warehouse.load import ensure_table

    con = duckdb.connect()
    checked = 0
    for spec in PROVIDERS.values():
        for stream in spec.streams:
            path = tmp_path / f"{spec.name}-{stream.name}.parquet"
            pq.write_table(pa.Table.from_batches([], schema=stream.schema.arrow_schema()), path)
            from_parquet = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
            ensure_table(con, spec.name, stream.name, stream.schema.duckdb_columns())
            created = con.execute(f'DESCRIBE "raw_{spec.name}"."{stream.name}"').fetchall()
            assert [(c[0], c[1]) for c in created] == [(c[0], c[1]) for c in from_parquet]
            checked += 1
    assert checked == 24
    assert ("_extracted_at", "TIMESTAMP WITH TIME ZONE") in PROVIDERS["akinon"].stream("invoices").schema.duckdb_columns()
