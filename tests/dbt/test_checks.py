"""The data checks fail the build with a message that names what is wrong.

Tables with an enforced contract carry their checks as constraints (not null, accepted values and row
rules as CHECK) that DuckDB enforces as the rows are written: the model fails with DuckDB's constraint
error. Their keys (primary key / unique) are checked by one query in the same transaction
(macros/contract_keys.sql). The raw sources have no contract: one test per provider
(tests/raw/raw_<provider>_valid.sql) checks the keys and columns of its tables, one scan per table.
Each test breaks a copy of the built warehouse.
"""

from __future__ import annotations

import datetime as dt
import os

import duckdb
import pytest

from invoice_warehouse.warehouse.dbt import DbtError
from tests.helpers import execute, query

#: A broken raw row comes in as a load would bring it: in a batch the staging models have not staged
#: (the incremental ones re-stage only the keys that have such a row).
NEW_BATCH = "_batch_id = 'a-later-batch'"


def _failed_dbt(warehouse, tmp_path, provider: str, args: list[str], *sql: str):
    """dbt ``args`` on a copy of the warehouse whose raw data ``sql`` broke: the copy and the message
    of the DbtError it must raise."""
    if provider not in warehouse.providers:
        pytest.skip(f"{provider} not available")
    db = warehouse.copy(tmp_path)
    execute(db, *sql)
    with pytest.raises(DbtError) as err:
        warehouse.dbt(args, db=db)
    return db, str(err.value)


def test_a_null_in_a_not_null_staging_column_fails_the_build(warehouse, tmp_path):
    db, msg = _failed_dbt(warehouse, tmp_path, "dealpos", ["build", "-s", "stg_dealpos__invoices+"],
                          f'UPDATE raw_dealpos.invoices SET "CustomerID" = NULL, {NEW_BATCH} '
                          'WHERE "ID" = (SELECT min("ID") FROM raw_dealpos.invoices)')
    assert "model stg_dealpos__invoices" in msg
    assert "NOT NULL constraint failed: stg_dealpos__invoices.customer_id" in msg
    # The failed model left the last good table in place, and nothing downstream was built from it.
    assert "SKIP=" in msg and "SKIP=0" not in msg
    assert query(db, "SELECT count(*) FROM staging.stg_dealpos__invoices WHERE customer_id IS NULL") == [(0,)]


def test_a_duplicate_key_fails_the_build(warehouse, tmp_path):
    """A key of the contract is checked by a query as the model is written (no DuckDB index): the model
    fails naming the key and a repeated value, before it commits."""
    [(first,)] = query(warehouse.db, 'SELECT min("ID") FROM raw_dealpos.invoices')
    db, msg = _failed_dbt(warehouse, tmp_path, "dealpos", ["build", "-s", "stg_dealpos__invoices+"],
                          "INSERT INTO raw_dealpos.invoices SELECT * REPLACE ('a-later-batch' AS _batch_id) "
                          f"FROM raw_dealpos.invoices WHERE \"ID\" = '{first}'")
    assert "model stg_dealpos__invoices" in msg
    assert f"duplicate key in staging.stg_dealpos__invoices: primary_key (invoice_id) = {first} in 2 rows" in msg
    # The last good table stays (one row per invoice), and nothing downstream was built from the new one.
    assert "SKIP=" in msg and "SKIP=0" not in msg
    assert query(db, "SELECT count(*), count(DISTINCT invoice_id) FROM staging.stg_dealpos__invoices") == \
        query(warehouse.db, "SELECT count(*), count(DISTINCT invoice_id) FROM staging.stg_dealpos__invoices")


def test_a_repeated_unique_key_of_several_columns_fails_the_model(warehouse, tmp_path):
    """A model-level unique key (Shopwave's customers: customer_type and customer_id) names every column
    and the repeated values."""
    [(store,)] = query(warehouse.db, "SELECT min(id) FROM raw_shopwave.stores")
    _, msg = _failed_dbt(warehouse, tmp_path, "shopwave", ["run", "-s", "stg_shopwave__customers"],
                         f"INSERT INTO raw_shopwave.stores SELECT * FROM raw_shopwave.stores WHERE id = '{store}'")
    assert ("duplicate key in staging.stg_shopwave__customers: unique (customer_type, customer_id) = "
            f"store, {store} in 2 rows") in msg


def test_keys_are_checked_by_query_not_by_an_index(warehouse):
    """The built tables carry not null and check constraints but no key index (an ART index per key made
    the daily rebuild a third slower); a primary key's columns are NOT NULL."""
    kinds = query(warehouse.db, "SELECT DISTINCT constraint_type FROM duckdb_constraints() "
                                "WHERE schema_name IN ('staging', 'intermediate', 'marts') ORDER BY 1")
    assert kinds == [("CHECK",), ("NOT NULL",)]
    assert query(warehouse.db, "SELECT count(*) FROM duckdb_indexes() "
                               "WHERE schema_name IN ('staging', 'intermediate', 'marts')") == [(0,)]
    assert ("NOT NULL", ["line_key"]) in query(
        warehouse.db, "SELECT constraint_type, constraint_column_names FROM duckdb_constraints() "
                      "WHERE schema_name = 'marts' AND table_name = 'fct_invoice_lines'")


def test_a_value_outside_the_accepted_ones_fails_the_build(warehouse, tmp_path):
    # stg_dealpos__invoices.source_status: Cancelled, or the payment state Paid / Partial / Unpaid.
    _, msg = _failed_dbt(warehouse, tmp_path, "dealpos", ["build", "-s", "stg_dealpos__invoices"],
                         "UPDATE raw_dealpos.invoices SET \"Status\" = 'Archived', \"Payment\" = 'Archived', "
                         f"{NEW_BATCH} "
                         'WHERE "ID" = (SELECT min("ID") FROM raw_dealpos.invoices)')
    assert "CHECK constraint failed" in msg and "source_status IN ('Paid', 'Partial', 'Unpaid', 'Cancelled')" in msg


def test_the_raw_checks_name_the_table_and_the_failed_checks(warehouse, tmp_path):
    db, msg = _failed_dbt(warehouse, tmp_path, "redex", ["test", "-s", "source:raw_redex.invoices"],
                          "UPDATE raw_redex.invoices SET \"TransactionType\" = 'Bogus' "
                          "WHERE \"InvoiceNumber\" = (SELECT min(\"InvoiceNumber\") FROM raw_redex.invoices)",
                          "UPDATE raw_redex.invoices SET \"Total\" = NULL "
                          "WHERE \"InvoiceNumber\" = (SELECT max(\"InvoiceNumber\") FROM raw_redex.invoices)",
                          "INSERT INTO raw_redex.orders SELECT * FROM raw_redex.orders "
                          "WHERE \"TransactionId\" IN (SELECT \"TransactionId\" FROM raw_redex.orders "
                          "ORDER BY 1 LIMIT 2)")
    assert "Failure in test raw_redex_valid" in msg and "Got 3 results" in msg
    # The failing rows say which table and checks failed (the compiled query, run as is).
    compiled = next((warehouse.data_dir / "dbt" / "target" / "compiled").rglob("raw_redex_valid.sql"))
    rows = query(db, compiled.read_text())
    assert sorted(rows) == [("raw_redex.invoices", "accepted_values", "TransactionType", 1),
                            ("raw_redex.invoices", "not_null", "Total", 1),
                            ("raw_redex.orders", "unique", "TransactionId", 2)]


def test_a_repeated_day_and_invoice_in_the_daily_balances_fails_the_day(warehouse, tmp_path):
    """fct_receivables_daily's key (balance_date, invoice_key) has no index (too large): a daily run
    checks the batch it adds (a repeat can only come in with it), and fails before it commits."""
    db = warehouse.copy(tmp_path)
    rows = "SELECT count(*), max(balance_date) FROM marts.fct_receivables_daily"
    [(stored, last_day)] = before = query(db, rows)
    # An invoice whose balance history repeats its open interval: the next day would hold it twice.
    [(invoice,)] = query(db, "SELECT min(invoice_key) FROM intermediate.int_invoice_balances_historized "
                             "WHERE valid_to IS NULL AND open_balance <> 0")
    execute(db, "INSERT INTO intermediate.int_invoice_balances_historized SELECT * "
               f"FROM intermediate.int_invoice_balances_historized WHERE invoice_key = '{invoice}' "
               "AND valid_to IS NULL")
    next_day = (last_day + dt.timedelta(days=1)).isoformat()
    with pytest.raises(DbtError) as err:
        warehouse.dbt(["run", "-s", "fct_receivables_daily"], db=db, as_of_date=next_day)
    assert (f"duplicate key in marts.fct_receivables_daily: primary_key (balance_date, invoice_key) = "
            f"{next_day}, {invoice} in 2 rows") in str(err.value)
    assert query(db, rows) == before and stored > 0
    # Without the repeat, the same day goes in, checked over its batch only.
    execute(db, "DELETE FROM intermediate.int_invoice_balances_historized WHERE rowid = "
               f"(SELECT max(rowid) FROM intermediate.int_invoice_balances_historized WHERE invoice_key = '{invoice}')")
    warehouse.dbt(["run", "-s", "fct_receivables_daily"], db=db, as_of_date=next_day)
    [(after, new_last)] = query(db, rows)
    assert new_last.isoformat() == next_day and after > stored
    assert query(db, "SELECT count(*) FROM marts.fct_receivables_daily "
                     f"WHERE balance_date = '{next_day}' AND invoice_key = '{invoice}'") == [(1,)]


def test_an_incremental_table_without_its_constraints_gets_them(warehouse, tmp_path):
    """fct_receivables_daily's history is kept; a table built before its contract declared constraints
    is rebuilt with them (ensure_contract_constraints), which checks the stored rows too."""
    db = warehouse.copy(tmp_path)
    rows = "SELECT * FROM marts.fct_receivables_daily ORDER BY ALL"
    before = query(db, rows)
    unconstrained = ("CREATE TABLE marts.frd AS SELECT * FROM marts.fct_receivables_daily",
                     "DROP TABLE marts.fct_receivables_daily",
                     "ALTER TABLE marts.frd RENAME TO fct_receivables_daily")
    constraints = ("SELECT constraint_type, constraint_column_names FROM duckdb_constraints() "
                   "WHERE schema_name = 'marts' AND table_name = 'fct_receivables_daily' ORDER BY ALL")
    expected = query(warehouse.db, constraints)
    assert ("NOT NULL", ["balance_date"]) in expected and ("CHECK", ["aging_bucket"]) in expected
    execute(db, *unconstrained)
    assert query(db, constraints) == []

    out = warehouse.dbt(["run", "-s", "fct_receivables_daily"], db=db)
    assert "with its contract's constraints" in out
    assert query(db, constraints) == expected
    assert query(db, rows) == before
    # Constraints in place: the next run leaves the table as it is.
    assert "with its contract's constraints" not in warehouse.dbt(["run", "-s", "fct_receivables_daily"], db=db)

    # A stored row that breaks the contract fails the rebuild, and the table stays as it was.
    execute(db, *unconstrained, "UPDATE marts.fct_receivables_daily SET currency = NULL "
                               "WHERE (balance_date, invoice_key) = (SELECT (balance_date, invoice_key) "
                               "FROM marts.fct_receivables_daily ORDER BY ALL LIMIT 1)")
    with pytest.raises(DbtError) as err:
        warehouse.dbt(["run", "-s", "fct_receivables_daily"], db=db)
    assert "NOT NULL constraint failed" in str(err.value) and "currency" in str(err.value)
    assert query(db, constraints) == []


def test_run_dbt_logs_each_line_and_frees_the_warehouse_file(warehouse, tmp_path, caplog):
    """dbt runs in-process: its lines are logged as `dbt | ...`, the environment it was given is put
    back, and its DuckDB handle is closed (this process can open the file with another configuration)."""
    db = warehouse.copy(tmp_path)
    env_before = {k: os.environ.get(k) for k in ("IWH_WAREHOUSE_PATH", "DBT_TARGET_PATH", "DBT_LOG_PATH",
                                                 "DBT_LOG_LEVEL_FILE")}
    dbt_log = warehouse.data_dir / "dbt" / "logs" / "dbt.log"
    offset = dbt_log.stat().st_size
    with caplog.at_level("INFO", logger="invoice_warehouse.warehouse.dbt"):
        out = warehouse.dbt(["run", "-s", "dim_products"], db=db)
    # dbt.log at info: the node's lines, not every SQL statement (DBT_LOG_LEVEL_FILE=debug adds them).
    with open(dbt_log, encoding="utf-8") as fh:
        fh.seek(offset)
        written = fh.read()
    assert "OK created sql table model marts.dim_products" in written and "SQL status" not in written
    logged = [r.getMessage() for r in caplog.records if r.name == "invoice_warehouse.warehouse.dbt"]
    assert [m for m in logged if m.startswith("dbt | ")] == [f"dbt | {line}" for line in out.splitlines()]
    assert any("Done. PASS=2" in m for m in logged)  # the on-run-start hook and dim_products
    assert "\x1b[" not in out  # no colour codes in the task log
    assert {k: os.environ.get(k) for k in env_before} == env_before
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM marts.dim_products").fetchone()[0] > 0
