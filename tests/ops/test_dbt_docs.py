"""``make docs``: the dbt documentation site builds, with every model of the project in it, before any
warehouse exists (empty catalog) and from a copy of the published warehouse (with its catalog)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb

from invoice_warehouse import config
from invoice_warehouse import local_airflow as la

ROOT = Path(__file__).resolve().parents[2]


def project_models() -> set[str]:
    return {p.stem for p in (ROOT / "dbt_project" / "models").rglob("*.sql")}


def test_docs_site_without_a_warehouse(data_dir):
    site = la.build_dbt_docs()
    assert site == data_dir / "dbt" / "docs"
    assert (site / "index.html").read_text().startswith("<!doctype html>")
    manifest = json.loads((site / "manifest.json").read_text())
    models = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    assert models == project_models()
    catalog = json.loads((site / "catalog.json").read_text())
    assert catalog["nodes"] == {}  # nothing built yet: no column types
    assert not config.published_db().exists()  # and no warehouse was made on the way


def test_docs_site_reads_the_catalog_from_a_copy_of_the_published_warehouse(data_dir):
    published = config.published_db()
    published.parent.mkdir(parents=True)
    with duckdb.connect(str(published)) as con:
        con.execute("create schema marts; create table marts.fct_invoices (invoice_key varchar, total_amount decimal(38,6))")
    before = published.read_bytes()
    site = la.build_dbt_docs()
    catalog = json.loads((site / "catalog.json").read_text())
    node = catalog["nodes"]["model.invoice_warehouse.fct_invoices"]
    assert {c: v["type"] for c, v in node["columns"].items()} == {"invoice_key": "VARCHAR",
                                                                 "total_amount": "DECIMAL(38,6)"}
    assert published.read_bytes() == before  # the published file itself was never opened for writing
    shutil.rmtree(site)
