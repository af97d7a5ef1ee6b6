"""The dbt project's own guarantees: documented marts, an up-to-date customer_xref seed, the
entity_providers var matching the staging models that exist, the unit tests run, and an unmapped
source status failing the build instead of passing as NULL (tests/dbt/test_checks.py: the other checks)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pytest
import yaml

from invoice_warehouse import config
from invoice_warehouse.warehouse.dbt import DbtError
from tests.helpers import query
from simulators import xref

PROJECT = config.dbt_project_dir()
MARTS = {"fct_invoices", "fct_invoice_lines", "fct_payments", "fct_orders", "fct_returns",
         "fct_receivables_daily", "rpt_ar_aging", "rpt_dso", "dim_customers", "dim_products"}
UNIT_TESTS = {
    "rpt_ar_aging_bucket_edges",
    "rpt_dso_is_month_end_receivables_over_credit_sales_times_days",
    "int_invoices_balanced_maps_source_statuses_to_canonical",
    "int_invoices_balanced_returns_and_payments_reduce_the_balance",
    "int_payments_allocated_numbers_instalments",
    "int_invoice_balances_historized_dates_instalments_and_a_return",
}


@pytest.fixture(scope="module")
def docs(warehouse) -> tuple[dict, dict]:
    """``dbt docs generate`` on the built warehouse: (manifest, catalog)."""
    warehouse.dbt(["docs", "generate", "--no-compile"])
    target = warehouse.data_dir / "dbt" / "target"
    return (json.loads((target / "manifest.json").read_text()),
            json.loads((target / "catalog.json").read_text()))


def test_every_mart_and_every_column_is_described(docs):
    manifest, catalog = docs
    marts = {n["name"]: uid for uid, n in manifest["nodes"].items()
             if n["resource_type"] == "model" and n["fqn"][1] == "marts"}
    assert set(marts) == MARTS
    for name, uid in marts.items():
        node = manifest["nodes"][uid]
        assert node["description"].strip(), f"{name} has no description"
        assert node["config"]["contract"]["enforced"], f"{name} has no enforced contract"
        built = {c.lower() for c in catalog["nodes"][uid]["columns"]}
        described = {c for c, col in node["columns"].items() if col["description"].strip()}
        assert built == described, f"{name}: undescribed {built - described}, stale {described - built}"


def test_constraints_are_declared_where_duckdb_enforces_them(docs):
    """A not_null / unique / accepted_values check of a model is a constraint of its enforced contract,
    which DuckDB enforces only on tables (keys by the contract_keys post-hook, on tables too): every
    model that declares constraints is a table (or an incremental table) with an enforced contract,
    every staging model among them."""
    manifest, _ = docs
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    constrained = {name for name, n in models.items()
                   if n["constraints"] or any(c["constraints"] for c in n["columns"].values())}
    assert {name for name in models if name.startswith("stg_")} <= constrained
    for name in constrained:
        config = models[name]["config"]
        assert config["contract"]["enforced"], name
        assert config["materialized"] in ("table", "incremental"), name
    # No foreign keys (relationships stay data tests: a referenced table could not be rebuilt).
    types = {c["type"] for n in models.values()
             for c in [*n["constraints"], *(k for col in n["columns"].values() for k in col["constraints"])]}
    assert types == {"not_null", "primary_key", "unique", "check"}


def test_money_columns_of_the_marts_are_decimal_38_6(docs):
    _, catalog = docs
    money = {(uid, col["name"]): col["type"].upper() for uid, node in catalog["nodes"].items()
             if uid.startswith("model.") and node["metadata"]["schema"] == "marts"
             for col in node["columns"].values()
             if re.search(r"(amount|balance|price|total|sales|receivables)$", col["name"])}
    assert len(money) >= 24
    assert {k: t for k, t in money.items() if t != "DECIMAL(38,6)"} == {}


def test_entity_providers_lists_exactly_the_staging_models(docs):
    manifest, _ = docs
    declared = yaml.safe_load((PROJECT / "dbt_project.yml").read_text())["vars"]["entity_providers"]
    staged: dict[str, set[str]] = {}
    for node in manifest["nodes"].values():
        m = re.fullmatch(r"stg_([a-z0-9]+)__([a-z_]+)", node["name"])
        if node["resource_type"] == "model" and m and m.group(2) in declared:
            staged.setdefault(m.group(2), set()).add(m.group(1))
    assert {e: set(ps) for e, ps in declared.items() if ps} == staged


def test_customer_xref_seed_is_generated_from_every_simulator():
    path = Path(PROJECT) / "seeds" / "customer_xref.csv"
    assert path.read_text(encoding="utf-8") == xref.render(xref.rows()), \
        "stale seed: run python -m simulators.xref"
    rows = xref.rows()
    providers = {r["provider"] for r in rows}
    assert len(rows) == len(providers) * 40
    # One key per business customer at every provider, with its local id.
    keys = {(r["provider"], r["customer_key"]) for r in rows}
    assert len(keys) == len(rows)


def test_the_build_ran_every_unit_test(warehouse):
    results = {r["unique_id"].split(".")[-1]: r["status"] for r in warehouse.run_results["results"]
               if r["unique_id"].startswith("unit_test.")}
    assert {name: results.get(name) for name in UNIT_TESTS} == dict.fromkeys(UNIT_TESTS, "pass")


def test_an_unmapped_source_status_fails_the_build(warehouse, tmp_path):
    if "akinon" not in warehouse.providers:
        pytest.skip("akinon not available")
    db = warehouse.copy(tmp_path)
    with duckdb.connect(str(db)) as con:
        # A new version of the invoice, in a batch of its own (as a load would bring it).
        con.execute("UPDATE raw_akinon.invoices SET status = 'on_hold', _batch_id = 'a-later-batch' "
                    "WHERE id = (SELECT min(id) FROM raw_akinon.invoices)")
        before = con.execute("SELECT count(*), sum(total_amount) FROM marts.fct_invoices").fetchone()
    # +fct_invoices: staging re-stages the changed raw row, the intermediate models are rebuilt.
    with pytest.raises(DbtError) as err:
        warehouse.dbt(["build", "-s", "+fct_invoices"], db=db)
    # fct_invoices' contract: canonical_status not null, enforced by DuckDB as the table is written.
    assert "model fct_invoices" in str(err.value)
    assert "NOT NULL constraint failed: fct_invoices.canonical_status" in str(err.value)
    # The table is replaced in one transaction: the failed insert leaves the last good table.
    assert query(db, "SELECT count(*), sum(total_amount) FROM marts.fct_invoices") == [before]
