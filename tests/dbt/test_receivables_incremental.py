"""fct_receivables_daily is incremental: a daily run adds the new days and leaves history alone."""

from __future__ import annotations

from decimal import Decimal

import duckdb

from tests.helpers import query

DAY_SQL = ("SELECT balance_date, invoice_key, open_balance, days_past_due, aging_bucket "
           "FROM marts.fct_receivables_daily WHERE balance_date {} ORDER BY ALL")


def test_a_daily_run_adds_days_without_rebuilding_history(warehouse, tmp_path):
    db = warehouse.copy(tmp_path)
    # History up to 10 March, as if the warehouse had been built that day (dropped, then built again:
    # --full-refresh leaves this model alone).
    warehouse.dbt(["run", "-s", "fct_receivables_daily", "--full-refresh"], db=db, as_of_date="2025-03-10")
    assert query(db, "SELECT max(balance_date) FROM marts.fct_receivables_daily") == \
        query(warehouse.db, "SELECT max(balance_date) FROM marts.fct_receivables_daily")
    with duckdb.connect(str(db)) as con:
        con.execute("DROP TABLE marts.fct_receivables_daily")
    warehouse.dbt(["run", "-s", "fct_receivables_daily"], db=db, as_of_date="2025-03-10")
    assert query(db, "SELECT max(balance_date) FROM marts.fct_receivables_daily") == [
        (query(db, "SELECT DATE '2025-03-10'")[0][0],)]
    with duckdb.connect(str(db)) as con:
        (marked,) = con.execute(
            "UPDATE marts.fct_receivables_daily SET open_balance = 12345.678 WHERE (balance_date, invoice_key) = "
            "(SELECT (balance_date, invoice_key) FROM marts.fct_receivables_daily "
            " WHERE balance_date = DATE '2025-03-05' ORDER BY invoice_key LIMIT 1) RETURNING invoice_key").fetchone()
    before = query(db, DAY_SQL.format("<= DATE '2025-03-10'"))

    # The next run, as of 15 March: the five new days are added, the tampered past row survives.
    warehouse.dbt(["run", "-s", "fct_receivables_daily"], db=db, as_of_date="2025-03-15")
    assert query(db, DAY_SQL.format("<= DATE '2025-03-10'")) == before
    assert query(db, "SELECT open_balance FROM marts.fct_receivables_daily WHERE balance_date = "
                     "DATE '2025-03-05' AND invoice_key = ?", [marked]) == [(Decimal("12345.678"),)]
    new_days = query(db, DAY_SQL.format("> DATE '2025-03-10'"))
    assert new_days == query(warehouse.db, DAY_SQL.format("> DATE '2025-03-10'"))
    assert {r[0].isoformat() for r in new_days} == {f"2025-03-{d}" for d in range(11, 16)}
    # Everything else equals a full build as of 15 March.
    untouched = [r for r in before if not (r[0].isoformat() == "2025-03-05" and r[1] == marked)]
    full = query(warehouse.db, DAY_SQL.format("<= DATE '2025-03-10'"))
    assert untouched == [r for r in full if not (r[0].isoformat() == "2025-03-05" and r[1] == marked)]

    # Running the same day again adds nothing.
    count = query(db, "SELECT count(*) FROM marts.fct_receivables_daily")
    warehouse.dbt(["run", "-s", "fct_receivables_daily"], db=db, as_of_date="2025-03-15")
    assert query(db, "SELECT count(*) FROM marts.fct_receivables_daily") == count
