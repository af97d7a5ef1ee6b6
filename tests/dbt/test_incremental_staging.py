"""Incremental staging (macros/incremental_staging.sql): a daily build re-stages only the raw keys that
have a row of a batch the model has not staged, and ends with the same tables a full rebuild makes.

Raw data changes the way a load changes it: a changed record, a new record and a record that lost all
its lines each come with a new _batch_id, and a record disappears (a full-refresh reload without it).
DealPOS payments are unnested from their invoice, so their key there is invoice_id.
"""

from __future__ import annotations

import pytest

from invoice_warehouse.warehouse import dbt
from tests.dbt.conftest import AS_OF_DATE
from tests.helpers import execute, query

#: The incremental staging models: their raw table, its key, and that key's column in the model.
INCREMENTAL = {
    "stg_akinon__invoices": ("raw_akinon.invoices", "id", "invoice_id"),
    "stg_akinon__invoice_lines": ("raw_akinon.invoices", "id", "invoice_id"),
    "stg_akinon__orders": ("raw_akinon.orders", "id", "order_id"),
    "stg_dealpos__invoices": ("raw_dealpos.invoices", '"ID"', "invoice_id"),
    "stg_dealpos__invoice_lines": ("raw_dealpos.invoices", '"ID"', "invoice_id"),
    "stg_dealpos__payments": ("raw_dealpos.invoices", '"ID"', "invoice_id"),
    "stg_idh__orders": ("raw_idh.orders", "po", "order_id"),
    "stg_idh__order_lines": ("raw_idh.orders", "po", "order_id"),
    "stg_idh__invoices": ("raw_idh.invoices", "id", "invoice_id"),
    "stg_shopwave__payments": ("raw_shopwave.transactions", "id", "payment_id"),
}
BATCH = "a-later-batch"


def _keys(db, table: str, key: str, n: int) -> list[str]:
    return [k for (k,) in query(db, f"SELECT CAST({key} AS VARCHAR) FROM {table} ORDER BY {key} LIMIT {n}")]


def _as_a_load_would(db) -> dict[str, list[str]]:
    """Change each raw table of INCREMENTAL as loads do; the keys used, per raw table: a changed record
    (a new version in a new batch), a record gone from the raw table, a new record (one the staging
    tables do not have yet, arriving in a new batch)."""
    used = {}
    for table, key in sorted({(raw, key) for raw, key, _ in INCREMENTAL.values()}):
        changed, gone, new = _keys(db, table, key, 3)
        used[table] = [changed, gone, new]
        execute(db, f"UPDATE {table} SET _batch_id = '{BATCH}' WHERE CAST({key} AS VARCHAR) IN ('{changed}', '{new}')",
               f"DELETE FROM {table} WHERE CAST({key} AS VARCHAR) = '{gone}'",
               *(f"DELETE FROM staging.{model} WHERE {staged_key} = '{new}'"
                 for model, (raw, _, staged_key) in INCREMENTAL.items() if raw == table))
    # A DealPOS invoice whose new version has no lines and no payments.
    execute(db, f"UPDATE raw_dealpos.invoices SET \"Variants\" = '[]', \"Payments\" = '[]' "
               f"WHERE \"ID\" = '{used['raw_dealpos.invoices'][0]}'")
    return used


def _staged(db, model: str) -> list[tuple]:
    return query(db, f"SELECT * FROM staging.{model} ORDER BY ALL")


def test_a_daily_build_stages_what_a_full_rebuild_would(warehouse, tmp_path):
    for p in ("akinon", "dealpos", "idh", "shopwave"):
        if p not in warehouse.providers:
            pytest.skip(f"{p} not available")
    daily, full = tmp_path / "daily", tmp_path / "full"
    daily.mkdir(), full.mkdir()
    daily_db, full_db = warehouse.copy(daily), warehouse.copy(full)
    before = {m: _staged(daily_db, m) for m in INCREMENTAL}
    used = _as_a_load_would(daily_db)
    assert _as_a_load_would(full_db) == used
    assert all(len(set(keys)) == 3 for keys in used.values())

    # (Only the staging models: a record gone from the raw tables keeps its history in
    # fct_receivables_daily, which the relationships test to fct_invoices would then report.)
    warehouse.dbt(["run", "-s", *INCREMENTAL], db=daily_db)
    warehouse.dbt(["run", "--full-refresh", "-s", *INCREMENTAL], db=full_db)
    for model in INCREMENTAL:
        assert _staged(daily_db, model) == _staged(full_db, model), model
        assert _staged(daily_db, model) != before[model], model

    # The changes show: the new key is staged, the gone one is not, the invoice without lines has none.
    akinon_changed, akinon_gone, akinon_new = used["raw_akinon.invoices"]
    ids = {k for (k,) in query(daily_db, "SELECT invoice_id FROM staging.stg_akinon__invoices")}
    assert akinon_new in ids and akinon_gone not in ids and akinon_changed in ids
    for model in ("stg_akinon__invoice_lines", "stg_dealpos__invoice_lines", "stg_idh__order_lines"):
        raw_table, _, staged_key = INCREMENTAL[model]
        assert query(daily_db, f"SELECT count(*) FROM staging.{model} WHERE {staged_key} = $1",
                     [used[raw_table][2]])[0][0] > 0, model
    dealpos_changed = used["raw_dealpos.invoices"][0]
    assert query(daily_db, "SELECT (SELECT count(*) FROM staging.stg_dealpos__invoice_lines WHERE invoice_id = $1), "
                           "(SELECT count(*) FROM staging.stg_dealpos__payments WHERE invoice_id = $1)",
                 [dealpos_changed]) == [(0, 0)]
    # Each model recorded the new batch once, under its version.
    assert query(daily_db, "SELECT model, count(*) FROM meta.staged_batches WHERE batch_id = $1 "
                           "GROUP BY ALL ORDER BY ALL", [BATCH]) == [(m, 1) for m in sorted(INCREMENTAL)]


def test_only_keys_of_new_batches_are_restaged(warehouse, tmp_path):
    """A raw row edited in place (same batch) is not re-staged: the staged row stays as it was, the
    keys of the new batch are re-staged. The pipeline's full build (the project changed) re-stages
    every row."""
    if "akinon" not in warehouse.providers:
        pytest.skip("akinon not available")
    db = warehouse.copy(tmp_path)
    first, second = _keys(db, "raw_akinon.invoices", "id", 2)
    [(number,)] = query(db, f"SELECT number FROM raw_akinon.invoices WHERE id = '{first}'")
    execute(db, f"UPDATE raw_akinon.invoices SET number = 'EDITED' WHERE id IN ('{first}', '{second}')",
           f"UPDATE raw_akinon.invoices SET _batch_id = '{BATCH}' WHERE id = '{second}'")

    warehouse.dbt(["run", "-s", "stg_akinon__invoices"], db=db)
    staged = "SELECT invoice_id, invoice_number FROM staging.stg_akinon__invoices WHERE invoice_id IN ($1, $2) ORDER BY 1"
    assert query(db, staged, [first, second]) == sorted([(first, number), (second, "EDITED")])

    # The copy has no record of a full build through the pipeline: build() runs the full one.
    assert dbt.built_digest(db) is None
    with warehouse.env():
        out = dbt.build(work_db=db, vars_={"as_of_date": AS_OF_DATE})
    assert "OK created sql incremental model staging.stg_akinon__invoices" in out
    assert query(db, staged, [first, second]) == sorted([(first, "EDITED"), (second, "EDITED")])
    assert dbt.built_digest(db) == dbt.project_digest()
