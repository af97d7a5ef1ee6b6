"""``make demo``: the whole pipeline on this machine, end to end, through the real DAGs.

    python -m invoice_warehouse.demo [--days 30] [--scale 1] [--keep] [--retries]

1. starts the five provider simulators (``iwh-sim`` in a child process; their "now" is the real time);
2. prepares Airflow on SQLite in ``$IWH_DATA_DIR/airflow`` (``airflow db migrate``, one connection per
   provider pointed at its simulator with the credentials it serves, the pools ``<provider>_api`` and
   ``duckdb_writer``: exactly what ``make airflow`` shows afterwards);
3. runs every ``extract_<provider>`` DAG once with ``dag.test()`` for the last ``--days`` days
   (``date_start``/``date_end`` in the run conf: a manual backfill of the whole range in one run);
4. runs the ``warehouse`` DAG (load into DuckDB, dbt build, atomic publish);
5. prints a summary from the published warehouse (invoices, payments and open receivables per provider
   and currency), writes ``data/report/summary.json`` and the HTML receivables report
   ``data/report/receivables.html``; stops the simulators.

Airflow's own output (and dbt's) goes to ``data/logs/demo.log``; the terminal shows the steps, what
runs now and the elapsed time. ``--keep`` keeps earlier landed files and warehouse (by default the
demo starts from an empty landing zone and warehouse, so its numbers are those of the window alone).
By default a failing task is not retried: the simulators inject no faults, so a failure is a bug, and
the DAGs' retry delays (minutes) would only hide it; ``--retries`` keeps the DAGs' retries.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from invoice_warehouse import config
from invoice_warehouse.local_airflow import Simulators, configure_environment, setup_airflow

UTC = dt.timezone.utc
TASK_LINE = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")


# --- terminal progress ---------------------------------------------------------------------------
class Progress:
    """``[k/n] what ... (elapsed)`` lines on the real terminal while Airflow's output goes to a log."""

    def __init__(self, total: int, out: TextIO):
        self.total, self.out = total, out
        self.t0 = time.monotonic()
        self.k = 0
        self.tty = out.isatty()
        self._status: Callable[[], str] | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._live = False

    def elapsed(self) -> str:
        s = int(time.monotonic() - self.t0)
        return f"{s // 60}:{s % 60:02d}"

    def _write(self, line: str, live: bool = False) -> None:
        with self._lock:
            if self.tty:
                self.out.write("\r\033[K" + line + ("" if live else "\n"))
            elif not live or line:
                self.out.write(line + "\n")
            self.out.flush()
            self._live = live

    def step(self, what: str) -> float:
        self.k += 1
        self._write(f"[{self.k}/{self.total}] {what}  (elapsed {self.elapsed()})")
        return time.monotonic()

    def info(self, text: str) -> None:
        self._write(f"      {text}")

    def done(self, started: float, text: str = "done") -> None:
        self._write(f"      {text} in {time.monotonic() - started:.1f}s")

    @contextlib.contextmanager
    def live(self, status: Callable[[], str], every: float) -> Iterator[None]:
        """Show ``status()`` every ``every`` seconds (in place on a terminal) while the block runs."""
        self._stop.clear()

        def tick() -> None:
            while not self._stop.wait(every):
                try:
                    text = status()
                except Exception as exc:  # a status line must never break the demo
                    text = f"({exc})"
                self._write(f"      ... {text}  (elapsed {self.elapsed()})", live=self.tty)

        thread = threading.Thread(target=tick, name="demo-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join()
            if self.tty and self._live:
                self._write("", live=True)


@contextlib.contextmanager
def output_to(log_file: Path) -> Iterator[None]:
    """Send everything written to file descriptors 1 and 2 (Airflow's logs, dbt's output) to the log."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_file, "ab") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def last_task(log_file: Path, offset: int) -> tuple[str, int] | None:
    """The task dag.test() started last, from the log written since ``offset``."""
    try:
        with open(log_file, "rb") as fh:
            fh.seek(max(offset, os.path.getsize(log_file) - 200_000))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    found = TASK_LINE.findall(text)
    return (found[-1][0], int(found[-1][1])) if found else None


def failure_lines(log_file: Path, offset: int, limit: int = 12) -> list[str]:
    with open(log_file, "rb") as fh:
        fh.seek(offset)
        lines = fh.read().decode("utf-8", "replace").splitlines()
    keys = ("Error", "error", "failed", "Exception")
    hits = [ln.strip() for ln in lines if any(k in ln for k in keys) and "DEBUG" not in ln]
    return hits[-limit:]


# --- the steps -----------------------------------------------------------------------------------
def expected_partitions(spec: Any, days: int) -> int:
    """Partitions one extract run writes: one per day for windowed streams, one per full sweep."""
    return sum(days if s.window or s.ids_from else 1 for s in spec.streams)


def landed_since(provider: str, since: float) -> int:
    base = config.landing_dir() / provider
    return sum(1 for m in base.glob("*/window=*/_manifest.json") if m.stat().st_mtime >= since)


def load_dags() -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(config.home() / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return bag.dags


def without_retries(dag: Any) -> None:
    for task in dag.tasks:
        task.retries = 0


def run_dag(dag: Any, conf: dict[str, Any], progress: Progress, log_file: Path,
            status: Callable[[str], str]) -> tuple[bool, float]:
    """One dag.test() run in this process, its output in the log, a live status line; (ok, seconds)."""
    offset = log_file.stat().st_size if log_file.exists() else 0
    t = time.monotonic()

    def line() -> str:
        task = last_task(log_file, offset)
        return status(task_label(task))

    with progress.live(line, every=1.0 if progress.tty else 15.0), output_to(log_file):
        run = dag.test(run_conf=conf)
    ok = getattr(run, "state", None) == "success"
    if not ok:
        report_failure(progress, dag.dag_id, log_file, offset)
    return ok, time.monotonic() - t


def task_label(task: tuple[str, int] | None) -> str:
    if task is None:
        return "starting"
    return task[0] + (f"[{task[1]}]" if task[1] >= 0 else "")


def report_failure(progress: Progress, dag_id: str, log_file: Path, offset: int = 0) -> None:
    progress.info(f"{dag_id} FAILED; the errors in {log_file}:")
    for ln in failure_lines(log_file, offset):
        progress.info("  " + ln[:220])


class ExtractRun:
    """One ``extract_<provider>`` dag.test() in a child process (``--run-dag``), output in its own log.

    The five providers run side by side: their APIs are independent, and most of an extraction is
    waiting (DealPOS's documented rate limit, REDEX's detail fan-out). Each child is its own Airflow
    client of the one SQLite metadata database, as the scheduler and api-server of
    ``airflow standalone`` are."""

    def __init__(self, spec: Any, conf: dict[str, Any], days: int, log_dir: Path, retries: bool):
        self.spec, self.days = spec, days
        self.dag_id = f"extract_{spec.name}"
        self.log = log_dir / f"demo-{self.dag_id}.log"
        self.expected = expected_partitions(spec, days)
        #: map index -> entity, per mapped task (stage 1: "extract"; streams fed by ids: "extract_dependent")
        self.entities = {"extract": [s.name for s in spec.streams if not s.ids_from],
                         "extract_dependent": [s.name for s in spec.streams if s.ids_from]}
        self.cmd = [sys.executable, "-m", "invoice_warehouse.demo", "--run-dag", self.dag_id,
                    "--conf", json.dumps(conf)] + (["--retries"] if retries else [])
        self.proc: subprocess.Popen | None = None
        self.since = 0.0
        self.t0 = 0.0
        self.seconds: float | None = None

    def start(self) -> ExtractRun:
        self.since, self.t0 = time.time() - 1, time.monotonic()
        with open(self.log, "wb") as fh:
            self.proc = subprocess.Popen(self.cmd, stdout=fh, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        return self

    def poll(self) -> int | None:
        code = self.proc.poll() if self.proc else None
        if code is not None and self.seconds is None:
            self.seconds = time.monotonic() - self.t0
        return code

    def landed(self) -> int:
        return landed_since(self.spec.name, self.since)

    def status(self) -> str:
        code = self.poll()
        if code is not None:
            return f"{self.spec.name} {'done' if code == 0 else 'FAILED'}"
        task = last_task(self.log, 0)
        what = task_label(task)
        names = self.entities.get(task[0], []) if task else []
        if task and 0 <= task[1] < len(names):
            what = names[task[1]]
        return f"{self.spec.name} {self.landed()}/{self.expected} ({what})"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def run_extracts(runs: list[ExtractRun], progress: Progress) -> None:
    for i, r in enumerate(runs):
        if i:
            time.sleep(1.0)  # staggered: their start-up writes to SQLite do not all collide
        r.start()
    try:
        with progress.live(lambda: " | ".join(r.status() for r in runs), every=1.0 if progress.tty else 15.0):
            while any(r.poll() is None for r in runs):
                time.sleep(0.5)
    finally:
        for r in runs:
            r.stop()


def run_dag_here(dag_id: str, conf: dict[str, Any], retries: bool) -> int:
    """``--run-dag``: one dag.test() in this process (a child of the demo); exit 0 when it succeeded."""
    configure_environment()
    dag = load_dags()[dag_id]
    if not retries:
        without_retries(dag)
    run = dag.test(run_conf=conf)
    state = getattr(run, "state", None)
    print(f"[demo] {dag_id} finished: {state}", flush=True)
    return 0 if state == "success" else 1


def reset_data(keep: bool) -> None:
    if keep:
        return
    for path in (config.landing_dir(), config.data_dir() / "warehouse"):
        shutil.rmtree(path, ignore_errors=True)


# --- summary -------------------------------------------------------------------------------------
def _tables(con: Any) -> set[str]:
    return {f"{s}.{t}" for s, t in con.execute(
        "select table_schema, table_name from information_schema.tables").fetchall()}


#: The summary's queries, one per measure (each also asserted by tests/ops against the warehouse).
SUMMARY_SQL = {
    "invoices": ("marts.fct_invoices", """
        select provider, currency, count(*) as invoices,
               coalesce(sum(total_amount) filter (where not is_void), 0) as invoiced
        from marts.fct_invoices group by all"""),
    "payments": ("marts.fct_payments", """
        select provider, currency, count(*) filter (where counts_as_paid) as payments,
               coalesce(sum(amount) filter (where counts_as_paid), 0) as paid
        from marts.fct_payments group by all"""),
    "receivables": ("marts.rpt_ar_aging", """
        select provider, currency, sum(open_balance) as open_receivables,
               sum(open_balance) - coalesce(sum(current_amount), 0) as overdue
        from marts.rpt_ar_aging where direction = 'receivable' group by all"""),
}


def summarize(db: Path) -> dict[str, Any]:
    """Per provider and currency: invoices, invoiced amount, payments, amount paid, open and overdue
    receivables, read from the published warehouse (a mart not built yet gives ``None``)."""
    import duckdb

    rows: dict[tuple[str, str], dict[str, Any]] = {}
    missing = []
    with duckdb.connect(str(db), read_only=True) as con:
        tables = _tables(con)
        for table, sql in SUMMARY_SQL.values():
            if table not in tables:
                missing.append(table)
                continue
            cur = con.execute(sql)
            cols = [d[0] for d in cur.description]
            for r in cur.fetchall():
                rec = dict(zip(cols, r, strict=True))
                key = (rec.pop("provider"), rec.pop("currency") or "")
                rows.setdefault(key, {}).update(rec)
        as_of = None
        if "marts.rpt_ar_aging" in tables:
            as_of = con.execute("select max(as_of_date) from marts.rpt_ar_aging").fetchone()[0]
    measures = ("invoices", "invoiced", "payments", "paid", "open_receivables", "overdue")
    out = []
    for (provider, currency), rec in sorted(rows.items()):
        out.append({"provider": provider, "currency": currency,
                    **{m: _plain(rec.get(m)) for m in measures}})
    return {"as_of_date": as_of.isoformat() if as_of else None, "rows": out, "missing_marts": missing}


def _plain(v: Any) -> Any:
    """JSON-safe and exact: decimals as strings (money is never a float)."""
    from decimal import Decimal

    if isinstance(v, Decimal):
        return format(v.normalize() if v == v.to_integral() else v, "f")
    return v


def fmt_amount(v: Any) -> str:
    if v is None:
        return "n/a"
    from decimal import ROUND_HALF_UP, Decimal

    return f"{Decimal(str(v)).quantize(Decimal('0.01'), ROUND_HALF_UP):,}"


def summary_table(summary: dict[str, Any]) -> list[str]:
    head = ("provider", "currency", "invoices", "invoiced", "payments", "paid", "open receivables", "overdue")
    body = [(r["provider"], r["currency"], "n/a" if r["invoices"] is None else str(r["invoices"]),
             fmt_amount(r["invoiced"]), "n/a" if r["payments"] is None else str(r["payments"]),
             fmt_amount(r["paid"]), fmt_amount(r["open_receivables"]), fmt_amount(r["overdue"]))
            for r in summary["rows"]]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]

    def fmt(cells: tuple[str, ...]) -> str:  # names left-aligned, numbers right-aligned
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return [fmt(head), fmt(tuple("-" * w for w in widths)), *(fmt(b) for b in body)]


def load_report_module() -> Any:
    """include/report/receivables.py (a file of the project, not an installed package)."""
    path = config.home() / "include" / "report" / "receivables.py"
    spec = importlib.util.spec_from_file_location("iwh_receivables_report", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


# --- main ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m invoice_warehouse.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--days", type=int, default=30, help="days before today to extract (default 30)")
    p.add_argument("--scale", type=float, default=1.0, help="simulated volume (default 1)")
    p.add_argument("--sim-port", type=int, default=None, help="simulators' port (default 8900 or a free one)")
    p.add_argument("--keep", action="store_true", help="keep earlier landed files and warehouse")
    p.add_argument("--retries", action="store_true", help="keep the DAGs' task retries")
    p.add_argument("--providers", nargs="*", default=None, help="only these providers (default: all)")
    p.add_argument("--sequential", action="store_true", help="extract one provider after the other")
    p.add_argument("--run-dag", default=None, help=argparse.SUPPRESS)  # internal: a child's dag.test()
    p.add_argument("--conf", default="{}", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.run_dag:
        return run_dag_here(args.run_dag, json.loads(args.conf), args.retries)

    # Ctrl-C and SIGTERM stop the children and the simulators on the way out (finally blocks).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out = os.fdopen(os.dup(1), "w", buffering=1)  # the terminal, whatever fd 1 points at later
    env = configure_environment()
    log_dir = config.data_dir() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / "demo.log"
    log_file.write_text("")
    report_dir = config.data_dir() / "report"

    from invoice_warehouse.registry import PROVIDERS  # imports Airflow: after configure_environment

    providers = [n for n in PROVIDERS if args.providers is None or n in args.providers]
    progress = Progress(total=5, out=out)
    out.write(f"invoice warehouse demo: {len(providers)} providers, the last {args.days} days, "
              f"scale {args.scale:g}\n  data: {config.data_dir()}\n  log:  {log_file}\n")
    failed: list[str] = []
    timings: dict[str, float] = {}

    t = progress.step("starting the provider simulators")
    sim = Simulators(args.sim_port, scale=args.scale, log=log_dir / "simulators.log").start()
    try:
        now = dt.datetime.fromisoformat(sim.sim_config()["now"])
        end = now.date() - dt.timedelta(days=1)  # the last full day
        start = end - dt.timedelta(days=args.days - 1)
        progress.info(f"{', '.join(sim.health()['providers'])} on {sim.url}; their now: {now:%Y-%m-%d %H:%M} UTC")
        progress.info(f"window: {start} .. {end} (inclusive)")
        timings["simulators"] = time.monotonic() - t

        t = progress.step(f"setting up Airflow on SQLite ({env['AIRFLOW_HOME']})")
        reset_data(args.keep)
        with output_to(log_file):
            result = setup_airflow(sim, env, log=lambda m: None, reserialize=True)
        progress.info(f"connections: {', '.join(result['connections'])}")
        progress.info("pools: " + ", ".join(f"{k}={v['slots']}" for k, v in result["pools"].items()))
        timings["airflow setup"] = time.monotonic() - t
        progress.done(t)

        conf = {"date_start": start.isoformat(), "date_end": end.isoformat()}
        t = progress.step(f"extracting {start} .. {end} from {len(providers)} providers side by side "
                          f"(extract_<provider> DAGs)")
        runs = [ExtractRun(PROVIDERS[n], conf, args.days, log_dir, args.retries) for n in providers]
        if args.sequential:
            for r in runs:
                run_extracts([r], progress)
        else:
            run_extracts(runs, progress)
        for r in runs:
            timings[r.dag_id] = r.seconds or 0.0
            if r.poll() == 0:
                progress.info(f"{r.dag_id}: {r.landed()} partitions landed in {r.seconds:.0f}s")
            else:
                failed.append(r.dag_id)
                report_failure(progress, r.dag_id, r.log)
        timings["extract (all)"] = time.monotonic() - t
        progress.done(t)

        t = progress.step("warehouse: load into DuckDB, dbt build, publish")
        with output_to(log_file):
            dag = load_dags()["warehouse"]
        if not args.retries:
            without_retries(dag)
        ok, secs = run_dag(dag, {"providers": providers, "as_of_date": now.date().isoformat()}, progress,
                           log_file, lambda task: task)
        timings["warehouse"] = secs
        if ok:
            progress.done(t, f"published {config.published_db()}")
        else:
            failed.append("warehouse")
    finally:
        sim.stop()
        progress.info("simulators stopped")

    progress.step("summary and receivables report")
    published = config.published_db()
    if not published.exists():
        out.write("no published warehouse: nothing to summarize\n")
        return 1
    summary = summarize(published)
    summary.update({"sim_now": now.isoformat(), "window": {"start": start.isoformat(), "end": end.isoformat()},
                    "providers": providers, "failed": failed,
                    "seconds": {k: round(v, 1) for k, v in timings.items()}})
    report_dir.mkdir(parents=True, exist_ok=True)
    report = report_dir / "receivables.html"
    try:
        info = load_report_module().build_report(published, report)
        progress.info(f"report: {report} ({info['bytes']:,} bytes)")
    except Exception as exc:  # the summary still stands without the report
        failed.append("report")
        progress.info(f"report FAILED: {exc!r}")
    summary["seconds"]["total"] = round(time.monotonic() - progress.t0, 1)
    (report_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    out.write(f"\nPublished warehouse: {published}  (as of {summary['as_of_date']})\n\n")
    for line in summary_table(summary):
        out.write("  " + line + "\n")
    if summary["missing_marts"]:
        out.write(f"\n  not built yet: {', '.join(summary['missing_marts'])}\n")
    out.write(f"\nReceivables report: {report}\nSummary (JSON): {report_dir / 'summary.json'}\n")
    out.write(f"Next: `make airflow` (UI on http://localhost:8080), `make docs`, "
              f"`duckdb -readonly {published}`\n")
    out.write(f"Total time: {progress.elapsed()}" + (f"; FAILED: {', '.join(failed)}" if failed else "") + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
