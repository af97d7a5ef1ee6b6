"""``make demo`` for real, on a short window: the simulators, Airflow on SQLite, the real DAGs.

Runs ``python -m invoice_warehouse.demo --days 3 --scale 0.3`` in its own data directory and checks
that what it prints and writes is exactly what the published warehouse holds (queried here
independently), that Airflow ran one manual run per extract DAG with the window in its conf and then
the warehouse DAG, that the connections and pools it made are the project's, that the HTML report
carries the same numbers, and that the simulators are stopped at the end.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from invoice_warehouse import local_airflow as la
from invoice_warehouse.registry import PROVIDERS

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
DAYS = 3


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    data = tmp_path_factory.mktemp("demo-data")
    started = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    sim_port = la.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["IWH_DATA_DIR"] = str(data)
    proc = subprocess.run([sys.executable, "-m", "invoice_warehouse.demo", "--days", str(DAYS), "--scale", "0.3",
                           "--sim-port", str(sim_port)], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    log = data / "logs" / "demo.log"
    assert proc.returncode == 0, proc.stdout + proc.stderr + (log.read_text()[-4000:] if log.exists() else "")
    summary = json.loads((data / "report" / "summary.json").read_text())
    return {"data": data, "stdout": proc.stdout, "summary": summary, "sim_port": sim_port, "started": started,
            "finished": dt.datetime.now(dt.timezone.utc),
            "db": data / "warehouse" / "warehouse.duckdb"}


def q(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def dec(v) -> Decimal | None:
    return None if v is None else Decimal(str(v))


def test_progress_steps_and_window(demo):
    out = demo["stdout"]
    steps = re.findall(r"^\[(\d)/5\] (.+?)  \(elapsed (\d+:\d\d)\)$", out, re.M)
    assert [int(k) for k, _, _ in steps] == [1, 2, 3, 4, 5]
    assert steps[2][1].startswith(f"extracting {demo['summary']['window']['start']} .. ")
    # The simulators' real "now" (within this test's run): the last DAYS full days before it.
    now = dt.datetime.fromisoformat(demo["summary"]["sim_now"])
    assert demo["started"] <= now <= demo["finished"]
    end = now.date() - dt.timedelta(days=1)
    assert demo["summary"]["window"] == {"start": (end - dt.timedelta(days=DAYS - 1)).isoformat(),
                                         "end": end.isoformat()}
    for p in PROVIDERS:
        assert re.search(rf"^      extract_{p}: \d+ partitions landed in \d+s$", out, re.M), p
    assert "simulators stopped" in out
    assert re.search(r"^Total time: \d+:\d\d$", out, re.M)
    assert demo["summary"]["failed"] == []
    assert set(demo["summary"]["seconds"]) >= {"airflow setup", "warehouse", "total",
                                                *(f"extract_{p}" for p in PROVIDERS)}


def test_summary_equals_the_warehouse(demo):
    db, summary = demo["db"], demo["summary"]
    rows = {(r["provider"], r["currency"]): r for r in summary["rows"]}
    invoices = {(p, c): (n, total) for p, c, n, total in q(db, """
        select provider, currency, count(distinct invoice_key), sum(case when is_void then 0 else total_amount end)
        from marts.fct_invoices group by 1, 2""")}
    assert {k: (r["invoices"], dec(r["invoiced"])) for k, r in rows.items() if r["invoices"] is not None} == invoices
    assert set(invoices) >= {(p, c) for p, c in rows}  # every summary row is a provider/currency with invoices
    assert {p for p, _ in invoices} == set(PROVIDERS)  # every provider landed invoices

    payments = {(p, c): (n, total) for p, c, n, total in q(db, """
        select provider, currency, count(*), sum(amount) from marts.fct_payments
        where counts_as_paid group by 1, 2""")}
    assert {k: (r["payments"], dec(r["paid"])) for k, r in rows.items() if r["payments"] is not None} == payments

    # Open receivables as of the report date, from the daily balances (not the aging report the demo reads).
    as_of = summary["as_of_date"]
    assert as_of == q(db, "select max(balance_date) from marts.fct_receivables_daily")[0][0].isoformat()
    open_ = {(p, c): (total, overdue) for p, c, total, overdue in q(db, f"""
        select provider, currency, sum(open_balance), sum(open_balance) filter (where days_past_due > 0)
        from marts.fct_receivables_daily
        where direction = 'receivable' and balance_date = date '{as_of}' group by 1, 2""")}
    got = {k: (dec(r["open_receivables"]), dec(r["overdue"])) for k, r in rows.items()
           if r["open_receivables"] is not None}
    assert got == {k: (t, o or Decimal(0)) for k, (t, o) in open_.items()}


def test_printed_table_is_the_summary(demo):
    from invoice_warehouse.demo import fmt_amount

    lines = demo["stdout"].splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.split()[:3] == ["provider", "currency", "invoices"])
    printed = [ln.split() for ln in lines[head + 2: head + 2 + len(demo["summary"]["rows"])]]
    expected = [[r["provider"], r["currency"], "n/a" if r["invoices"] is None else str(r["invoices"]),
                 fmt_amount(r["invoiced"]), "n/a" if r["payments"] is None else str(r["payments"]),
                 fmt_amount(r["paid"]), fmt_amount(r["open_receivables"]), fmt_amount(r["overdue"])]
                for r in demo["summary"]["rows"]]
    assert printed == expected


def test_airflow_ran_the_real_dags_with_the_projects_connections_and_pools(demo):
    con = sqlite3.connect(demo["data"] / "airflow" / "airflow.db")
    try:
        pools = dict(con.execute("select pool, slots from slot_pool where pool != 'default_pool'").fetchall())
        assert pools == {name: p["slots"] for name, p in la.pools().items()}
        assert pools["duckdb_writer"] == 1
        conns = {c: (t, h) for c, t, h in con.execute("select conn_id, conn_type, host from connection")}
        port = demo["sim_port"]
        assert conns == {f"{p}_default": (spec.conn_type, f"http://127.0.0.1:{port}/{p}")
                         for p, spec in PROVIDERS.items()}
        runs = con.execute("select dag_id, state, run_type, conf from dag_run order by dag_id").fetchall()
    finally:
        con.close()
    assert [(d, s, t) for d, s, t, _ in runs] == sorted(
        [(f"extract_{p}", "success", "manual") for p in PROVIDERS] + [("warehouse", "success", "manual")])
    window = demo["summary"]["window"]
    for dag_id, _, _, conf in runs:
        conf = json.loads(conf) if isinstance(conf, str) else conf
        if dag_id.startswith("extract_"):
            assert conf == {"date_start": window["start"], "date_end": window["end"]}
        else:
            assert conf == {"providers": list(PROVIDERS), "as_of_date": demo["summary"]["as_of_date"]}


def test_report_carries_the_same_numbers(demo):
    from invoice_warehouse.demo import fmt_amount

    html = (demo["data"] / "report" / "receivables.html").read_text()
    assert f"As of <strong>{demo['summary']['as_of_date']}</strong>" in html
    text = re.sub(r"<[^>]+>", " ", html)
    for r in demo["summary"]["rows"]:
        if r["open_receivables"] is not None:
            # the aging table row: provider, currency ... open balance
            assert re.search(rf"{r['provider']} · {r['currency']}\s+\d+(\s+[\d,.-]+)*\s+"
                             rf"{re.escape(fmt_amount(r['open_receivables']))}", text), r
    assert "<script" not in html and not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)


def test_simulators_are_stopped(demo):
    assert la.port_free(demo["sim_port"])


def test_analyst_queries_of_the_docs_run_on_the_published_warehouse(demo):
    """Every SQL example of docs/analysts.md runs on what the demo published; today's aging adds up to
    the summary's open receivables."""
    text = (ROOT / "docs" / "analysts.md").read_text()
    statements = [s.strip() for block in re.findall(r"```sql\n(.*?)```", text, re.S)
                  for s in block.split(";") if s.strip()]
    assert len(statements) == 9
    results = [q(demo["db"], s) for s in statements]
    aging_today = {(p, c): total for p, c, *_, total in results[0]}
    assert aging_today == {(r["provider"], r["currency"]): dec(r["open_receivables"])
                           for r in demo["summary"]["rows"] if r["open_receivables"] is not None}
    assert {(p, e) for p, e, *_ in results[7]} == {(p, s.name) for p, spec in PROVIDERS.items() for s in spec.streams}
