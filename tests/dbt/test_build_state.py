"""pipeline.build's dbt step (warehouse/dbt.py: build): the whole project (seeds and their tests, unit
tests, models, data tests) when the project changed since the last full build of the warehouse or the
warehouse lacks a seed table or a view of the project; else the daily build (the table models and their
data tests only)."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from invoice_warehouse import config
from invoice_warehouse.warehouse import dbt
from tests.dbt.conftest import AS_OF_DATE
from tests.helpers import query


@pytest.fixture
def project_copy(tmp_path, monkeypatch) -> Path:
    """A copy of the dbt project (IWH_HOME points at it) and a data dir of its own."""
    home = tmp_path / "home"
    shutil.copytree(config.dbt_project_dir(), home / "dbt_project",
                    ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    monkeypatch.setenv("IWH_HOME", str(home))
    monkeypatch.setenv("IWH_DATA_DIR", str(tmp_path / "data"))
    return home / "dbt_project"


def test_the_digest_follows_the_project_files_not_dbt_artifacts(project_copy):
    digest = dbt.project_digest()
    (project_copy / "target").mkdir()
    (project_copy / "target" / "manifest.json").write_text("{}")
    (project_copy / ".user.yml").write_text("id: someone")
    assert dbt.project_digest() == digest
    seed = project_copy / "seeds" / "status_map.csv"
    seed.write_text(seed.read_text() + "\n")
    changed = dbt.project_digest()
    assert changed != digest
    model = project_copy / "models" / "marts" / "dim_products.sql"
    model.write_text(model.read_text() + "\n-- a comment\n")
    assert dbt.project_digest() != changed


def test_the_recorded_state_needs_every_seed_table_and_view(tmp_path, project_copy):
    db = tmp_path / "w.duckdb"
    assert dbt.built_digest(db) is None  # no warehouse yet
    dbt.record_build(db, "abc", ["intermediate.v"])
    assert dbt.built_digest(db) is None  # no seed tables
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE SCHEMA seeds")
        for name in dbt.seed_names():
            con.execute(f"CREATE TABLE seeds.{name} (x INTEGER)")
    assert dbt.seed_names() == ["customer_xref", "status_map"]
    assert dbt.built_digest(db) is None  # the view the full build made is gone
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE SCHEMA intermediate")
        con.execute("CREATE VIEW intermediate.v AS SELECT 1 AS x")
    assert dbt.built_digest(db) == "abc"
    dbt.record_build(db, "def")
    assert dbt.built_digest(db) == "def"
    with duckdb.connect(str(db)) as con:
        con.execute("DROP TABLE seeds.status_map")
    assert dbt.built_digest(db) is None


def test_a_state_recorded_without_its_views_asks_for_a_full_build(tmp_path):
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as con:  # the state table as it was before it listed the views
        con.execute("CREATE SCHEMA meta")
        con.execute("CREATE TABLE meta.dbt_project_state (digest VARCHAR, built_at TIMESTAMPTZ)")
        con.execute("INSERT INTO meta.dbt_project_state VALUES ('abc', now())")
        con.execute("CREATE SCHEMA seeds")
        for name in dbt.seed_names():
            con.execute(f"CREATE TABLE seeds.{name} (x INTEGER)")
    assert dbt.built_digest(db) is None
    dbt.record_build(db, "abc", [])
    assert dbt.built_digest(db) == "abc"
    assert query(db, "SELECT digest, views FROM meta.dbt_project_state") == [("abc", "[]")]


def _ran(out: str) -> dict[str, bool]:
    return {"seeds": "START seed file seeds.status_map" in out,
            "unit tests": "START unit_test" in out,
            "models": "START sql table model marts.fct_invoices" in out,
            "views": "START sql view model intermediate.int_invoices_unioned" in out,
            "source checks": "START test raw_" in out,
            "model-seed tests": "START test relationships_fct_invoices_customer_key__customer_key__ref_customer_xref_" in out}


def test_seeds_and_unit_tests_run_only_when_the_project_changed(warehouse, tmp_path, project_copy):
    db = warehouse.copy(tmp_path)  # built by `dbt build` directly: no state recorded
    vars_ = {"as_of_date": AS_OF_DATE}
    everything = {"seeds": True, "unit tests": True, "models": True, "views": True, "source checks": True,
                  "model-seed tests": True}
    daily = {**everything, "seeds": False, "unit tests": False, "views": False}

    assert _ran(dbt.build(work_db=db, vars_=vars_)) == everything
    assert dbt.built_digest(db) == dbt.project_digest()
    assert query(db, "SELECT views FROM meta.dbt_project_state") == [(
        '["intermediate.int_customers_unioned", "intermediate.int_invoice_lines_unioned", '
        '"intermediate.int_invoices_unioned", "intermediate.int_orders_unioned", '
        '"intermediate.int_payments_unioned", "intermediate.int_products_unioned", '
        '"intermediate.int_returns_unioned"]',)]
    assert _ran(dbt.build(work_db=db, vars_=vars_)) == daily

    # A view dropped from the warehouse: the next build is a full one, which makes it again.
    with duckdb.connect(str(db)) as con:
        con.execute("DROP VIEW intermediate.int_orders_unioned")
    assert _ran(dbt.build(work_db=db, vars_=vars_)) == everything
    assert query(db, "SELECT count(*) > 0 FROM intermediate.int_orders_unioned") == [(True,)]
    assert _ran(dbt.build(work_db=db, vars_=vars_)) == daily

    # A changed seed file: seeded again (and everything else runs once).
    seed = project_copy / "seeds" / "status_map.csv"
    seed.write_text(seed.read_text().rstrip("\n") + "\nakinon,returns,iwh_test,cancelled,a row added by the test\n")
    assert _ran(dbt.build(work_db=db, vars_=vars_)) == everything
    assert query(db, "SELECT canonical_status FROM seeds.status_map WHERE source_status = 'iwh_test'") == [
        ("cancelled",)]
    assert _ran(dbt.build(work_db=db, vars_=vars_)) == daily

    # A warehouse without its seed tables (a fresh one, or one someone dropped them from) is seeded.
    with duckdb.connect(str(db)) as con:
        con.execute("DROP TABLE seeds.customer_xref")
    assert _ran(dbt.build(work_db=db, vars_=vars_)) == everything
    assert query(db, "SELECT count(*) > 0 FROM seeds.customer_xref") == [(True,)]

    # A failed full build records nothing: the next run is a full build again.
    model = project_copy / "models" / "marts" / "dim_products.sql"
    model.write_text("select 1 as not_in_the_contract\n")
    with pytest.raises(dbt.DbtError):
        dbt.build(work_db=db, vars_=vars_)
    assert dbt.built_digest(db) not in (None, dbt.project_digest())


def test_a_new_as_of_date_keeps_dbts_partial_parse_and_reaches_the_marts(warehouse, tmp_path, project_copy):
    """The pipeline's date goes to dbt in IWH_AS_OF_DATE, not --vars: dbt re-parses the whole project
    when --vars change ("Unable to do partial parsing because config vars ... have changed"), which
    a date in them would make happen every day."""
    db = warehouse.copy(tmp_path)
    dbt.build(work_db=db, as_of_date="2025-03-14")  # full build: records the project state
    daily = dbt.build(work_db=db, as_of_date="2025-03-13")
    assert "Unable to do partial parsing" not in daily
    assert query(db, "SELECT DISTINCT as_of_date::VARCHAR FROM marts.rpt_ar_aging") == [("2025-03-13",)]
    assert query(db, "SELECT max(period_end)::VARCHAR FROM marts.rpt_dso") == [("2025-03-13",)]

    # Through --vars (as the daily build once passed it) a new date costs a full parse.
    varied = dbt.build(work_db=db, vars_={"as_of_date": "2025-03-12"})
    assert "Unable to do partial parsing because config vars, config profile, or config target have changed" \
        in varied
    assert query(db, "SELECT DISTINCT as_of_date::VARCHAR FROM marts.rpt_ar_aging") == [("2025-03-12",)]


@pytest.mark.parametrize("bad", ["2025-3-1", "today", "2025-03-01'; drop table x; --"])
def test_an_as_of_date_that_is_not_a_date_is_refused_before_dbt(bad):
    with pytest.raises(ValueError) as err:
        dbt.run_dbt(["build"], as_of_date=bad)
    assert str(err.value) == f"as_of_date must be a date as YYYY-MM-DD, got {bad!r}"
