"""The daily build's table write (macros/table_materialization.sql, iwh_sync_table): a table model with
a contract primary key is computed in full and only the rows that differ are written; the table ends up
with exactly the rows a rebuild gives. DuckDB's rowid shows which rows were written: a row left alone
keeps its rowid, a written row gets a new one after the table's last (the model's rows fit one row
group here, which a checkpoint never rewrites for a few deletions)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from invoice_warehouse.warehouse.dbt import DbtError
from tests.helpers import execute, query

LINES = "staging.stg_dealpos__invoice_lines"
FCT = "marts.fct_invoice_lines"
ROWS = f"SELECT rowid, * FROM {FCT}"


def _by_key(db: Path) -> dict[str, tuple]:
    """line_key -> (rowid, the row)."""
    with duckdb.connect(str(db), read_only=True) as con:
        cur = con.execute(ROWS)
        names = [d[0] for d in cur.description]
        at = names.index("line_key")
        return {r[at]: (r[0], r[1:]) for r in cur.fetchall()}


def _three_lines(db: Path) -> list[tuple[str, str]]:
    rows = query(db, f"SELECT invoice_id, line_id FROM {LINES} ORDER BY invoice_id, line_id LIMIT 3")
    assert len(rows) == 3
    return rows


def _edit(db: Path, lines: list[tuple[str, str]]) -> tuple[str, str, str]:
    """One line changed, one gone, one new; returns their line_keys."""
    (inv1, line1), (inv2, line2), (inv3, line3) = lines
    execute(db,
            f"UPDATE {LINES} SET description = 'edited by the test' WHERE line_id = '{line1}'",
            f"DELETE FROM {LINES} WHERE line_id = '{line2}'",
            f"INSERT INTO {LINES} SELECT * REPLACE ('{line3}-new' AS line_id, line_number + 100 AS line_number) "
            f"FROM {LINES} WHERE line_id = '{line3}'")
    return f"dealpos:{inv1}:{line1}", f"dealpos:{inv2}:{line2}", f"dealpos:{inv3}:{line3}-new"


def _same_rows(a: Path, b: Path) -> tuple[int, int]:
    """(rows only in a's table, rows only in b's), as multisets."""
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
        con.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
        return con.execute(f"SELECT (SELECT count(*) FROM (FROM a.{FCT} EXCEPT ALL FROM b.{FCT})), "
                           f"(SELECT count(*) FROM (FROM b.{FCT} EXCEPT ALL FROM a.{FCT}))").fetchone()


@pytest.fixture
def two_copies(warehouse, tmp_path) -> tuple[Path, Path]:
    (tmp_path / "synced").mkdir()
    (tmp_path / "rebuilt").mkdir()
    return warehouse.copy(tmp_path / "synced"), warehouse.copy(tmp_path / "rebuilt")


def test_only_the_changed_rows_are_written_and_the_table_is_what_a_rebuild_gives(warehouse, two_copies):
    synced, rebuilt = two_copies
    lines = _three_lines(synced)
    before = _by_key(synced)
    n = len(before)
    assert sorted(rowid for rowid, _ in before.values()) == list(range(n))
    changed, gone, new = _edit(synced, lines)
    assert _edit(rebuilt, lines) == (changed, gone, new)

    warehouse.dbt(["run", "-s", "fct_invoice_lines"], db=synced, sync_tables=True)
    warehouse.dbt(["run", "-s", "fct_invoice_lines"], db=rebuilt)

    after = _by_key(synced)
    assert len(after) == n
    assert gone not in after and changed in before and new not in before
    # Every other row is the stored one, untouched; the changed and the new line were written last.
    assert {k: v for k, v in after.items() if k not in (changed, new)} == \
        {k: v for k, v in before.items() if k not in (changed, gone)}
    assert sorted(after[k][0] for k in (changed, new)) == [n, n + 1]
    assert "edited by the test" in after[changed][1]
    # Row for row what the rebuild made, which rewrote every row.
    assert _same_rows(synced, rebuilt) == (0, 0)
    assert sorted(rowid for rowid, _ in _by_key(rebuilt).values()) == list(range(n))

    # --full-refresh rebuilds, whatever the daily setting.
    warehouse.dbt(["run", "-s", "fct_invoice_lines", "--full-refresh"], db=synced, sync_tables=True)
    assert sorted(rowid for rowid, _ in _by_key(synced).values()) == list(range(n))
    assert _same_rows(synced, rebuilt) == (0, 0)


def test_a_repeated_key_in_the_new_rows_fails_the_model_and_keeps_the_table(warehouse, two_copies):
    """A line repeated whole: a set difference against the stored rows would not see it, the key check
    of the new rows does, before anything is written."""
    synced, _ = two_copies
    [(inv, line), *_] = _three_lines(synced)
    before = _by_key(synced)
    execute(synced, f"INSERT INTO {LINES} SELECT * FROM {LINES} WHERE line_id = '{line}'")
    with pytest.raises(DbtError) as err:
        warehouse.dbt(["run", "-s", "fct_invoice_lines"], db=synced, sync_tables=True)
    assert (f"duplicate key in marts.fct_invoice_lines: primary_key (line_key) = dealpos:{inv}:{line} "
            "in 2 rows") in str(err.value)
    assert _by_key(synced) == before


def test_a_table_whose_columns_differ_from_the_select_is_rebuilt(warehouse, two_copies):
    synced, rebuilt = two_copies
    columns = f"SELECT column_name FROM duckdb_columns() WHERE schema_name = 'marts' AND table_name = " \
              "'fct_invoice_lines' ORDER BY column_index"
    contract = query(synced, columns)
    execute(synced, f"ALTER TABLE {FCT} ADD COLUMN stray INTEGER")
    warehouse.dbt(["run", "-s", "fct_invoice_lines"], db=synced, sync_tables=True)
    assert query(synced, columns) == contract
    assert _same_rows(synced, rebuilt) == (0, 0)


def test_without_the_daily_setting_a_table_is_rebuilt(warehouse, two_copies):
    """A manual `dbt run` (the project may have changed since the tables were built): every row is
    written again."""
    synced, _ = two_copies
    lines = _three_lines(synced)
    n = len(_by_key(synced))
    _edit(synced, lines)
    warehouse.dbt(["run", "-s", "fct_invoice_lines"], db=synced)
    assert sorted(rowid for rowid, _ in _by_key(synced).values()) == list(range(n))


def test_a_table_that_does_not_ask_for_it_is_rebuilt_in_the_daily_setting(warehouse, two_copies, monkeypatch):
    """Only the large tables write their changed rows (meta changed_rows_only): a small one is rewritten
    faster than its difference is found. Seen in dbt's statements (its log at debug): DuckDB compacts
    a small table's rowids when it checkpoints, so they cannot tell."""
    synced, _ = two_copies
    monkeypatch.setenv("DBT_LOG_LEVEL_FILE", "debug")
    log = warehouse.data_dir / "dbt" / "logs" / "dbt.log"

    def statements(model: str) -> str:
        start = log.stat().st_size if log.exists() else 0
        warehouse.dbt(["run", "-s", model], db=synced, sync_tables=True)
        with open(log, encoding="utf-8") as fh:
            fh.seek(start)
            return fh.read()

    [(customer,)] = query(synced, "SELECT min(customer_id) FROM staging.stg_dealpos__customers")
    execute(synced, "UPDATE staging.stg_dealpos__customers SET customer_name = 'renamed by the test' "
                    f"WHERE customer_id = '{customer}'")
    ran = statements("dim_customers")
    assert 'drop table if exists "work"."marts"."dim_customers"' in ran and "__iwh_new" not in ran
    assert query(synced, "SELECT customer_name FROM marts.dim_customers WHERE provider = 'dealpos' "
                         f"AND customer_id = '{customer}'") == [("renamed by the test",)]
    ran = statements("fct_invoice_lines")  # one that asks for it, in the same log
    assert 'create or replace temp table "fct_invoice_lines__iwh_new"' in ran
    assert 'drop table if exists "work"."marts"."fct_invoice_lines"' not in ran


def test_a_null_key_in_the_new_rows_fails_the_model_and_keeps_the_table(warehouse, two_copies):
    """As the rebuild's NOT NULL would: IN and NOT IN pass over a null, so the row would be dropped."""
    synced, rebuilt = two_copies
    [(inv, line), *_] = _three_lines(synced)
    before = _by_key(synced)
    for db in (synced, rebuilt):
        execute(db, f"ALTER TABLE {LINES} ALTER COLUMN line_id DROP NOT NULL",
                f"INSERT INTO {LINES} SELECT * REPLACE (NULL AS line_id) FROM {LINES} WHERE line_id = '{line}'")
    with pytest.raises(DbtError) as err:
        warehouse.dbt(["run", "-s", "fct_invoice_lines"], db=synced, sync_tables=True)
    assert "NOT NULL constraint failed: marts.fct_invoice_lines.line_key" in str(err.value)
    assert _by_key(synced) == before
    with pytest.raises(DbtError) as err:
        warehouse.dbt(["run", "-s", "fct_invoice_lines"], db=rebuilt)
    assert "NOT NULL constraint failed: fct_invoice_lines.line_key" in str(err.value)
