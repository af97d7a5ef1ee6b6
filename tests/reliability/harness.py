"""The reliability tests' machinery: run the real pipeline steps against the simulators, in this process
or in a subprocess (which a crashpoint may kill), and compare whole warehouses row for row.

Connections come the way Airflow gives them to the hooks (``AIRFLOW_CONN_<PROVIDER>_DEFAULT``); the only
thing a test changes is the HTTP retry policy (tiny backoff, short read timeout), never the credentials.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import duckdb

from invoice_warehouse import config, pipeline
from invoice_warehouse.engine.hook import ProviderHook, build_client
from invoice_warehouse.engine.http import RetryPolicy
from invoice_warehouse.registry import PROVIDERS
from simulators.server import SimServer
from tests.helpers import conn_info

ROOT = Path(__file__).resolve().parents[2]
UTC = dt.timezone.utc
#: The interval every reliability scenario extracts: three days (daily windows, one sweep).
START, END = dt.datetime(2025, 3, 1, tzinfo=UTC), dt.datetime(2025, 3, 4, tzinfo=UTC)
AS_OF_DATE = "2025-03-15"
#: DealPOS documents 50 requests / 180 s; both the simulator and the engine's limiter are scaled to 1 s.
RATE_WINDOW = 1.0
#: Columns that say when/by which run a row was extracted or loaded: they differ between two runs of
#: the same data by design, and are left out of "the same warehouse".
BOOKKEEPING = frozenset({"_extracted_at", "_run_id", "_batch_id", "_window", "extracted_at", "loaded_at"})
#: The schemas compared: dbt's three layers and every raw table.
COMPARED = "table_schema IN ('marts', 'intermediate', 'staging') OR table_schema LIKE 'raw\\_%' ESCAPE '\\'"
RAW = "table_schema LIKE 'raw\\_%' ESCAPE '\\'"
RAW_AND_META = RAW + " OR table_schema = 'meta'"


def connection_env(sim: SimServer) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` for every provider in the registry, from the simulator's current credentials."""
    out = {}
    for name, spec in PROVIDERS.items():
        info = conn_info(sim, name)
        out[f"AIRFLOW_CONN_{name.upper()}_DEFAULT"] = json.dumps({
            "conn_type": spec.conn_type, "host": info.host, "login": info.login, "password": info.password,
            "extra": dict(info.extra)})
    return out


def scale_rate_limit(sim: SimServer) -> None:
    if "dealpos" in sim.state.faults:
        sim.state.faults["dealpos"].update(rate_limit=(50, RATE_WINDOW))


def pipeline_env(sim: SimServer, data_dir: Path) -> dict[str, str]:
    """Everything a pipeline step needs from its environment (also handed to subprocesses)."""
    return {"IWH_DATA_DIR": str(data_dir), "IWH_RATE_WINDOW_SCALE": str(RATE_WINDOW / 180),
            **connection_env(sim)}


@contextmanager
def running_pipeline(sim: SimServer, data_dir: Path, retry: RetryPolicy | None = None,
                     clients: list | None = None) -> Iterator[None]:
    """Pipeline steps in this process: the data dir, the Airflow connections and (optionally) a retry
    policy for the hooks' clients, which ``clients`` collects as ``(provider, client)``. The hooks still
    read every credential from the connection."""
    data_dir.mkdir(parents=True, exist_ok=True)
    scale_rate_limit(sim)

    def get_conn(self: ProviderHook):
        if self._client is None:
            self._client = build_client(self.spec, self.conn_info(), retry=retry)
            if clients is not None:
                clients.append((self.spec.name, self._client))
        return self._client

    with config.environ(pipeline_env(sim, data_dir)), mock.patch.object(ProviderHook, "get_conn", get_conn):
        yield


def extract(run_id: str, start: dt.datetime = START, end: dt.datetime = END,
            providers: list[str] | None = None) -> list[dict[str, Any]]:
    """What the extract DAGs do for [start, end): plan, then every entity (in the spec's order)."""
    out = []
    for name in providers or list(PROVIDERS):
        for item in pipeline.plan(name, {}, start, end):
            out.append(pipeline.extract(item, run_id))
    return out


def build() -> None:
    """The dbt_build task: pipeline.build (models, their tests and constraints) on the working file."""
    pipeline.build(AS_OF_DATE)


def warehouse(run_id: str) -> list[dict[str, Any]]:
    """What the warehouse DAG does: load, dbt build, publish."""
    audits = pipeline.load(run_id)
    build()
    pipeline.publish_warehouse()
    return audits


def run_step(step: str, sim: SimServer, data_dir: Path, *, crash_at: str | None = None,
             args: list[str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """One pipeline step in a subprocess (tests/reliability/driver.py), optionally killed at a crashpoint."""
    scale_rate_limit(sim)
    child_env = {**os.environ, **pipeline_env(sim, data_dir), "IWH_CRASH_AT": crash_at or ""}
    return subprocess.run([sys.executable, "-m", "tests.reliability.driver", step, *(args or [])],
                          cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=timeout)


def start_step(step: str, sim: SimServer, data_dir: Path, args: list[str] | None = None) -> subprocess.Popen:
    """A pipeline step in a subprocess of its own session (its process group: it and its dbt child),
    left running for the caller to watch and kill."""
    scale_rate_limit(sim)
    child_env = {**os.environ, **pipeline_env(sim, data_dir), "IWH_CRASH_AT": ""}
    return subprocess.Popen([sys.executable, "-m", "tests.reliability.driver", step, *(args or [])],
                            cwd=ROOT, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


# --- comparing warehouses ------------------------------------------------------------------------

def snapshot(db: Path | str, where: str = COMPARED, bookkeeping: bool = False) -> dict[str, list[tuple]]:
    """Every table and view of the compared schemas, minus bookkeeping columns (unless ``bookkeeping``),
    every value as exact text (decimals keep their digits), rows sorted: two equal snapshots are the same
    warehouse row for row."""
    out = {}
    with duckdb.connect(str(db), read_only=True) as con:
        tables = con.execute(
            f"SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = "
            f"current_database() AND ({where}) ORDER BY ALL").fetchall()
        for schema, table in tables:
            cols = [c for (c,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_catalog = current_database() "
                "AND table_schema = ? AND table_name = ? ORDER BY ordinal_position", [schema, table]).fetchall()
                if bookkeeping or c not in BOOKKEEPING]
            select = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in cols)
            out[f"{schema}.{table}"] = con.execute(
                f'SELECT {select} FROM "{schema}"."{table}" ORDER BY ALL').fetchall()
    return out


def differences(got: dict[str, list[tuple]], want: dict[str, list[tuple]], show: int = 3) -> dict[str, Any]:
    """Per table: rows missing and rows extra (as multisets), a few of each, for a readable failure."""
    diff: dict[str, Any] = {}
    for t in sorted(set(got) | set(want)):
        if t not in got or t not in want:
            diff[t] = "only in " + ("the run" if t in got else "the clean run")
            continue
        if got[t] == want[t]:
            continue
        g, w = collections.Counter(got[t]), collections.Counter(want[t])
        missing, extra = list((w - g).elements()), list((g - w).elements())
        diff[t] = {"clean rows": len(want[t]), "rows": len(got[t]), "missing": len(missing),
                   "extra": len(extra), "e.g. missing": missing[:show], "e.g. extra": extra[:show]}
    return diff


def assert_same_warehouse(got: dict[str, list[tuple]], want: dict[str, list[tuple]]) -> None:
    """Row for row equality of two snapshots, failing with the differences spelled out (not truncated)."""
    diff = differences(got, want)
    if diff:
        import pprint

        import pytest

        pytest.fail("the warehouse differs from the clean run's:\n" + pprint.pformat(diff, width=110))
    assert got == want


def marts(snap: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    return {t: rows for t, rows in snap.items() if t.startswith("marts.")}


def sha256(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def copy_data_dir(src: Path, dst: Path) -> Path:
    """A private copy of a finished run's data dir (landing, warehouse files, dbt's target with its
    partial-parse cache), to continue from."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("logs"))
    return dst


def query(db: Path | str, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def published() -> Path:
    return config.published_db()
