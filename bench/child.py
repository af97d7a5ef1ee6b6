"""One measured step of the benchmark, in a process of its own (so its peak RSS is its own).

    python bench/child.py '<json job>'

prints one JSON line with the result. Jobs (``job["mode"]``):

* ``extract``: one stream of one provider over [start, end) through the engine (``build_client`` +
  ``run_stream``), one partition for the whole window or one per day (``daily``), as
  ``pipeline.extract`` does; the client is built from connection parts as tests/helpers.py does.
* ``load``: ``load_entity`` (the merge by key) of one entity into a DuckDB file.
* ``ctas``: the plain copy the load is compared with, ``CREATE TABLE AS SELECT * FROM read_parquet``.
* ``idle``: the imports of an extract job and nothing else (the floor of its RSS).

With ``block_airflow`` the child cannot import Airflow, so the engine runs as the plain library it is
(engine/hook.py's documented fallback) and its RSS is comparable with dlt's; inside an Airflow task
the interpreter also holds Airflow (the ``idle`` job measures both).
The parent reads the peak RSS from ``os.wait4`` (ru_maxrss of this process alone).
"""

from __future__ import annotations

import importlib.abc
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any


class _NoAirflow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):  # noqa: ANN001 - importlib protocol
        if name == "airflow" or name.startswith("airflow."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the benchmark)", name=name)
        return None


class _RetryLog(logging.Handler):
    """Seconds (from the start of the job) and reason of every retry the engine logs (429s by time)."""

    def __init__(self, t0: float):
        super().__init__(logging.WARNING)
        self.t0 = t0
        self.events: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if "retry" in msg:
            self.events.append((round(time.monotonic() - self.t0, 3), msg[:160]))


def _spec(provider: str):
    import importlib

    return importlib.import_module(f"invoice_warehouse.providers.{provider}").SPEC


def extract(job: dict[str, Any]) -> dict[str, Any]:
    import datetime as dt

    from invoice_warehouse.engine.hook import build_client
    from invoice_warehouse.engine.http import RetryPolicy
    from invoice_warehouse.engine.runner import iter_windows, run_stream
    from invoice_warehouse.engine.spec import ConnInfo

    t0 = time.monotonic()
    retries = _RetryLog(t0)
    logging.getLogger("invoice_warehouse").addHandler(retries)
    spec = _spec(job["provider"])
    stream = spec.stream(job["stream"])
    conn = ConnInfo(**job["conn"])
    # The engine's default policy, with a read timeout that tolerates a busy simulator on 2 cores.
    client = build_client(spec, conn, retry=RetryPolicy(read_timeout=120.0), on_secret=lambda s: None)
    start = dt.datetime.fromisoformat(job["start"])
    end = dt.datetime.fromisoformat(job["end"])
    if job.get("daily") and stream.window is not None:
        windows = list(iter_windows(start.date(), end.date()))
    else:
        windows = [(start, end, job.get("label") or f"bench-{end.date().isoformat()}")]
    totals: dict[str, Any] = {"records": 0, "pages": 0, "quarantined": 0, "windows": 0, "data_bytes": 0,
                              "files": []}
    for s, e, label in windows:
        m = run_stream(client, spec, stream, start=s, end=e, landing=job["landing"], window_label=label,
                       run_id=job.get("run_id", "bench"), concurrency=job.get("concurrency"))
        totals["records"] += m["records"]
        totals["pages"] += m["pages"]
        totals["quarantined"] += m["quarantined"]
        totals["windows"] += 1
        path = Path(job["landing"]) / spec.name / stream.name / f"window={label}" / m["files"]["data"]
        totals["data_bytes"] += path.stat().st_size
        totals["files"].append(str(path))
    stats = client.stats.as_dict()
    return {**totals, "requests": stats["requests"], "retries": stats["retries"],
            "statuses": stats["statuses"], "retry_reasons": stats["retry_reasons"],
            "http_bytes": stats["bytes"], "rate_waited": round(client.limiter.waited, 3) if client.limiter else 0,
            "rate_limit": [client.limiter.max_calls, client.limiter.period] if client.limiter else None,
            "max_concurrency": job.get("concurrency") or spec.max_concurrency,
            "retry_log": retries.events[:200],
            "seconds": round(time.monotonic() - t0, 3)}


def load(job: dict[str, Any]) -> dict[str, Any]:
    from invoice_warehouse.warehouse.load import load_all

    t0 = time.monotonic()
    spec = _spec(job["provider"])
    # The load task's own entry point (its DuckDB settings included), for this one entity.
    (audit,) = load_all(job["db"], job["landing"], [spec], run_id=job.get("run_id", "bench"),
                        entities={spec.name: [job["entity"]]})
    return {"audit": audit, "seconds": round(time.monotonic() - t0, 3)}


def ctas(job: dict[str, Any]) -> dict[str, Any]:
    import duckdb

    t0 = time.monotonic()
    with duckdb.connect(job["db"]) as con:
        con.execute("CREATE OR REPLACE TABLE plain_copy AS SELECT * FROM read_parquet(?, union_by_name = true)",
                    [job["files"]])
        rows = con.execute("SELECT count(*) FROM plain_copy").fetchone()[0]
        con.execute("CHECKPOINT")
    return {"rows": rows, "seconds": round(time.monotonic() - t0, 3)}


def idle(job: dict[str, Any]) -> dict[str, Any]:
    from invoice_warehouse.engine import hook, runner  # noqa: F401 - the imports are the point

    _spec(job.get("provider", "akinon"))
    return {"airflow_imported": "airflow" in sys.modules}


MODES = {"extract": extract, "load": load, "ctas": ctas, "idle": idle}


def vm_hwm_mb() -> float:
    """Peak RSS of this process since its exec (VmHWM). ``ru_maxrss`` from wait4 is not used: Linux
    carries the forking parent's high-water mark into it at exec."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def main() -> int:
    job = json.loads(sys.argv[1])
    if job.get("block_airflow"):
        sys.meta_path.insert(0, _NoAirflow())
    result = MODES[job["mode"]](job)
    result["vm_hwm_mb"] = vm_hwm_mb()
    print("BENCH-RESULT " + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
