"""Run dbt (dbt-duckdb) against the working warehouse file, in the calling process.

dbt runs in-process through ``dbtRunner`` (dbt's programmatic entry point): no second interpreter to
start and no second import of dbt. dbt-core keeps global state per invocation (flags, the event
manager, the invocation context with its environment), so invocations in one process must not overlap:
a lock serialises them, and the environment dbt reads through ``env_var()`` (IWH_WAREHOUSE_PATH,
DBT_TARGET_PATH, DBT_LOG_PATH) is set only for the duration of one invocation. The callers are an
Airflow task (a process of its own) or a plain Python process. Every console line dbt writes is logged
as ``dbt | <line>``; a failed invocation raises DbtError with the tail of that output.

``build()`` is what the pipeline's dbt step runs (see its docstring): the whole project (seeds, their
tests, unit tests, models, data tests) when the project changed since the last full build of this
warehouse, else the daily build (the table models and their data tests).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import os
import threading
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from invoice_warehouse import config
from invoice_warehouse.engine.collector import bulk_allocation

log = logging.getLogger(__name__)

#: One dbt invocation at a time per process (dbt-core's global state is per process).
_LOCK = threading.Lock()
TAIL_LINES = 40
#: The warehouse table that records the project state of the last successful full build.
STATE_TABLE = "meta.dbt_project_state"
#: The daily build: the table models and every data test on them; not the seeds, their own tests (their
#: files have not changed since the full build that loaded and tested them), the unit tests (fixed
#: inputs: they test the code, which has not changed either) or the views (a view is its code: the full
#: build made them, and built_digest asks for a full build again if one is gone). Tests between a model
#: and a seed (relationships to customer_xref) still run: cautious indirect selection keeps a test whose
#: parents are all selected, and unselected seeds are not excluded parents. --no-write-json: dbt would write
#: manifest.json twice (an unchanged project's, seconds of serialising); run_dbt still writes
#: run_results.json.
DAILY_BUILD = ("build", "--exclude", "resource_type:seed", "config.materialized:view",
               "--exclude-resource-type", "unit_test", "--indirect-selection", "cautious", "--no-write-json")
#: The full build, when the project changed: everything, the incremental staging models rebuilt in full
#: (--full-refresh: a changed model or macro may change what every row stages to, or the columns);
#: fct_receivables_daily keeps its history (full_refresh=false in its config).
FULL_BUILD = ("build", "--full-refresh")


class DbtError(RuntimeError):
    pass


class _LineLog(io.TextIOBase):
    """The console stream dbt writes to: every line logged as ``dbt | ...`` and kept for the tail."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._partial = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        with self._lock:
            *done, self._partial = (self._partial + s).split("\n")
            for line in done:
                self._emit(line)
        return len(s)

    def flush(self) -> None:
        with self._lock:
            if self._partial:
                self._emit(self._partial)
                self._partial = ""

    def _emit(self, line: str) -> None:
        line = line.rstrip("\r")
        self.lines.append(line)
        log.info("dbt | %s", line)


def _close_duckdb() -> None:
    """Close dbt-duckdb's database handle, so the warehouse file is free for the next step (publish
    copies it, the tests open it) whatever the invocation did."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # pragma: no cover - dbt-duckdb is a dependency
        return
    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
        if env is not None:
            try:
                env.close()
            except Exception:  # noqa: BLE001 - closing is best effort, the handle is dropped anyway
                log.debug("closing dbt-duckdb's environment failed", exc_info=True)


def _day(as_of_date: str | dt.date | None) -> str:
    """``as_of_date`` as YYYY-MM-DD ("" for none: the marts are as of today); anything else is refused
    here, before the text reaches dbt's SQL."""
    if as_of_date in (None, ""):
        return ""
    if isinstance(as_of_date, dt.date):
        return as_of_date.isoformat()
    try:
        return dt.date.fromisoformat(str(as_of_date)).isoformat()
    except ValueError:
        raise ValueError(f"as_of_date must be a date as YYYY-MM-DD, got {as_of_date!r}") from None


@bulk_allocation()  # dbt's imports and its run: the collector held back (engine/collector.py)
def run_dbt(args: Sequence[str], *, work_db: Path | str | None = None, vars_: dict | None = None,
            as_of_date: str | dt.date | None = None, sync_tables: bool = False) -> str:
    """``dbt <args>`` on the working warehouse; returns the output, raises DbtError with its tail.

    ``as_of_date``: the day the receivables marts are as of (default today), passed to dbt in the
    environment (IWH_AS_OF_DATE, read by the ``as_of_date()`` macro) rather than in ``--vars``: dbt
    re-parses the whole project whenever ``--vars`` differ from its last invocation's, so a daily date
    there would cost a full parse every day. A ``vars_`` ``as_of_date`` still wins over it.
    ``sync_tables``: the table models marked ``meta: {changed_rows_only: true}`` write only their
    changed rows (IWH_SYNC_TABLES, read by the table materialization, macros/table_materialization.sql);
    only for the project the warehouse's tables were last fully built with (build() knows), else every
    table is rebuilt."""
    from dbt.cli.main import dbtRunner
    from dbt_common.events.functions import capture_stdout_logs, stop_capture_stdout_logs

    project = config.dbt_project_dir()
    env = {"IWH_WAREHOUSE_PATH": str(work_db or config.work_db()),
           "IWH_AS_OF_DATE": _day(as_of_date),
           "IWH_SYNC_TABLES": "1" if sync_tables else None,
           "DBT_LOG_PATH": str(config.data_dir() / "dbt" / "logs"),
           "DBT_TARGET_PATH": str(config.data_dir() / "dbt" / "target"),
           # dbt.log at info (a line per node and its result) unless asked for more: at debug dbt also
           # formats and writes every SQL statement from every thread, 1.5 s of CPU in a daily build.
           "DBT_LOG_LEVEL_FILE": os.environ.get("DBT_LOG_LEVEL_FILE") or "info",
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
           "DBT_USE_COLORS": "false"}  # plain lines in the task log
    cli = [*args, "--project-dir", str(project), "--profiles-dir", str(project)]
    if vars_:
        cli += ["--vars", json.dumps(vars_)]
    out = _LineLog()
    with _LOCK:
        log.info("running dbt %s", " ".join(cli))
        with config.environ(env):
            capture_stdout_logs(out)
            try:
                res = dbtRunner().invoke(cli)
            finally:
                stop_capture_stdout_logs()
                out.flush()
                _close_duckdb()
    if "--no-write-json" in args and hasattr(res.result, "write"):
        # The run's results (per-node status and timing) are written even without the manifest.
        res.result.write(str(config.data_dir() / "dbt" / "target" / "run_results.json"))
    if res.exception is not None and not isinstance(res.exception, Exception):
        # dbtRunner returns what interrupted it (KeyboardInterrupt, SystemExit, Airflow's task
        # termination or timeout): not a dbt failure, so it goes on up as it is.
        raise res.exception
    text = "\n".join(out.lines)
    if not res.success:
        tail = out.lines[-TAIL_LINES:]
        if res.exception is not None:  # dbt itself failed (a parse error, a bad argument...)
            tail.append(f"{type(res.exception).__name__}: {res.exception}")
        raise DbtError(f"dbt {' '.join(args)} failed:\n" + "\n".join(tail))
    return text


# --- the pipeline's build ---------------------------------------------------------------------------

def project_digest(project: Path | None = None) -> str:
    """What a full build depends on besides the data: every file of the dbt project (models, tests,
    macros, seeds, dbt_project.yml...) and the versions of dbt-core, dbt-duckdb and DuckDB."""
    project = Path(project or config.dbt_project_dir())
    h = hashlib.sha256()
    for dist in ("dbt-core", "dbt-duckdb", "duckdb"):
        try:
            h.update(f"{dist}=={metadata.version(dist)}\n".encode())
        except metadata.PackageNotFoundError:  # pragma: no cover
            h.update(f"{dist} missing\n".encode())
    skip = {"target", "logs", "dbt_packages"}
    for path in sorted(project.rglob("*")):
        rel = path.relative_to(project)
        if not path.is_file() or rel.parts[0] in skip or any(p.startswith(".") for p in rel.parts):
            continue
        h.update(f"{rel.as_posix()}\0".encode())
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def seed_names(project: Path | None = None) -> list[str]:
    project = Path(project or config.dbt_project_dir())
    return sorted(p.stem for p in (project / "seeds").glob("*.csv"))


def built_digest(db: Path | str) -> str | None:
    """The project digest of the last successful full build of ``db``, if its seed tables and the
    project's views it made still exist (the daily build makes neither)."""
    import duckdb

    db = Path(db)
    if not db.exists():
        return None
    with duckdb.connect(str(db), read_only=True) as con:
        found = {t for (t,) in con.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database()").fetchall()}
        if STATE_TABLE not in found or not all(f"seeds.{s}" in found for s in seed_names()):
            return None
        cur = con.execute(f"SELECT * FROM {STATE_TABLE} ORDER BY built_at DESC LIMIT 1")
        row = cur.fetchone()
        state = dict(zip([d[0] for d in cur.description], row, strict=True)) if row else {}
    # No "views": recorded before the state listed them, so build in full once.
    if "views" not in state or not all(v in found for v in json.loads(state["views"] or "[]")):
        return None
    return state["digest"]


def project_views(target: Path | str | None = None) -> list[str]:
    """``schema.name`` of every view model of the project, from the manifest the last full build wrote."""
    target = Path(target or config.data_dir() / "dbt" / "target")
    manifest = json.loads((target / "manifest.json").read_text())
    return sorted(f"{n['schema']}.{n['alias'] or n['name']}" for n in manifest["nodes"].values()
                  if n["resource_type"] == "model" and n["config"].get("materialized") == "view")


def record_build(db: Path | str, digest: str, views: Sequence[str] = ()) -> None:
    import duckdb

    schema = STATE_TABLE.split(".")[0]
    with duckdb.connect(str(db)) as con:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        con.execute(f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} "
                    "(digest VARCHAR, built_at TIMESTAMPTZ, views VARCHAR)")
        # A state table from before it listed the views gets the column.
        con.execute(f"ALTER TABLE {STATE_TABLE} ADD COLUMN IF NOT EXISTS views VARCHAR")
        con.execute(f"DELETE FROM {STATE_TABLE}")
        con.execute(f"INSERT INTO {STATE_TABLE} VALUES (?, ?, ?)",
                    [digest, dt.datetime.now(dt.timezone.utc), json.dumps(sorted(views))])


def build(*, work_db: Path | str | None = None, vars_: dict | None = None,
          as_of_date: str | dt.date | None = None) -> str:
    """The pipeline's dbt step on the working warehouse.

    A full ``dbt build`` (seeds and their tests, unit tests, models, data tests, in DAG order) when the
    project (project_digest: its files and the dbt/DuckDB versions) differs from the last successful
    full build of this warehouse, or the warehouse has no seed tables (a fresh one); the state is
    recorded in ``meta.dbt_project_state`` after it succeeds, with the views it made. Otherwise the
    daily build (DAILY_BUILD): every table model and every data test on the models and sources, nothing
    that depends on the code alone; the large tables write only their changed rows (``sync_tables``).
    ``as_of_date``: as in run_dbt.
    """
    db = Path(work_db or config.work_db())
    digest = project_digest()
    if built_digest(db) == digest:
        return run_dbt(DAILY_BUILD, work_db=db, vars_=vars_, as_of_date=as_of_date, sync_tables=True)
    log.info("dbt project changed since the last full build of %s (or none yet): full build", db)
    out = run_dbt(FULL_BUILD, work_db=db, vars_=vars_, as_of_date=as_of_date)
    record_build(db, digest, project_views())
    return out
