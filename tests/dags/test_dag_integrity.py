"""DAG integrity: every file in dags/ imports cleanly, with no network or database access at parse
time; schedules, pools, retries and Assets are what operators rely on."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from pathlib import Path

from invoice_warehouse import pipeline
from invoice_warehouse.registry import PROVIDERS

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p.name for p in (ROOT / "dags").glob("*.py"))

GUARD = textwrap.dedent("""
    import runpy, socket, sqlite3, sys
    def deny(*a, **k):
        raise RuntimeError("network or database access at DAG parse time")
    socket.socket.connect = deny
    socket.create_connection = deny
    sqlite3.connect = deny  # the metadata DB (SQLite here): an engine may exist, a connection may not
    for path in sys.argv[1:]:
        runpy.run_path(path)
    print("parsed", len(sys.argv) - 1)
""")


def test_dag_files_parse_without_network_or_database():
    files = [str(ROOT / "dags" / f) for f in DAG_FILES]
    proc = subprocess.run([sys.executable, "-c", GUARD, *files], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith(f"parsed {len(files)}")


def test_dagbag_has_every_dag_without_errors(dagbag):
    assert dagbag.import_errors == {}
    expected = {f"extract_{p}" for p in PROVIDERS} | {"warehouse"}
    assert set(dagbag.dags) == expected


def test_extract_dags_schedule_pools_retries_assets(dagbag):
    for name, spec in PROVIDERS.items():
        dag = dagbag.dags[f"extract_{name}"]
        assert dag.doc_md and "Backfill" in dag.doc_md
        assert (dag.timetable.expression, str(dag.timetable.timezone)) == ("0 0 * * *", "UTC")
        assert dag.catchup is False
        extract = dag.get_task("extract")
        assert extract.pool == f"{name}_api"
        assert extract.retries == 3
        assert float(extract.retry_exponential_backoff) == 2.0  # True: Airflow doubles the delay
        assert [a.name for a in extract.outlets] == [f"landing_{name}"]
        assert dag.get_task("plan").retries == 3
        assert set(dag.params["entities"]) == {s.name for s in spec.streams}


def test_warehouse_dag_is_asset_scheduled_single_writer(dagbag):
    dag = dagbag.dags["warehouse"]
    assert [t.task_id for t in dag.topological_sort()] == ["load", "dbt_build", "publish"]
    assert {t.pool for t in dag.tasks} == {pipeline.WRITER_POOL}
    assert dag.max_active_runs == 1
    uris = {a.uri for a in dag.timetable.asset_condition.objects}
    assert uris == {pipeline.asset_uri(p, s.name) for p, spec in PROVIDERS.items() for s in spec.streams}


def test_plan_uses_the_data_interval_and_params():
    start = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)
    items = pipeline.plan("akinon", {}, start, start + dt.timedelta(days=1))
    assert items[0] == {"provider": "akinon", "entity": "invoices", "start": "2025-03-01",
                        "end": "2025-03-02", "full_refresh": False, "stage": 1}
    items = pipeline.plan("akinon", {"entities": ["invoices"], "date_start": "2025-02-01",
                                     "date_end": "2025-02-03", "full_refresh": ["invoices"]}, None, None)
    assert items == [{"provider": "akinon", "entity": "invoices", "start": "2025-01-01",
                      "end": "2025-02-04", "full_refresh": True, "stage": 1}]


def test_plan_rejects_unknown_entities():
    import pytest

    with pytest.raises(ValueError, match=r"akinon has no entities \['nope'\]"):
        pipeline.plan("akinon", {"entities": ["nope"]}, None, None)


def test_lookback_widens_only_the_first_window(monkeypatch, tmp_path):
    """A run re-reads the provider's look-back days in one wider first request, then day by day."""
    import invoice_warehouse.engine.runner as runner
    from invoice_warehouse.registry import HOOKS

    calls = []

    def fake_run_stream(client, spec, stream, *, start, end, landing, window_label, run_id, extra_manifest,
                        full_refresh):
        calls.append((stream.name, start.date().isoformat(), end.date().isoformat(), window_label))
        return {"records": 0, "quarantined": 0, "pages": 1}

    monkeypatch.setattr(runner, "run_stream", fake_run_stream)
    from types import SimpleNamespace

    monkeypatch.setattr(HOOKS["dealpos"], "get_conn",
                        lambda self: SimpleNamespace(stats=SimpleNamespace(requests=0, retries=0)))
    monkeypatch.setenv("IWH_DATA_DIR", str(tmp_path))
    item = {"provider": "dealpos", "entity": "invoices", "start": "2025-03-01", "end": "2025-03-04",
            "full_refresh": False, "stage": 1}
    totals = pipeline.extract(item, "run")
    assert calls == [("invoices", "2025-02-15", "2025-03-02", "2025-03-01"),
                     ("invoices", "2025-03-02", "2025-03-03", "2025-03-02"),
                     ("invoices", "2025-03-03", "2025-03-04", "2025-03-03")]
    assert totals["windows"] == 3
