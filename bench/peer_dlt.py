"""The peer: dlt's ``rest_api`` source pulling the same Akinon invoices endpoint into DuckDB.

Runs in the benchmark's own virtual environment (bench/.venv-dlt, made by bench/run.py; dlt is not a
project dependency), in a process of its own so its peak RSS can be read, and prints one JSON line.

    bench/.venv-dlt/bin/python bench/peer_dlt.py '<json job>'

The configuration is what a dlt user would write for a Django REST Framework list: token auth in the
``Authorization`` header, the ``next`` link followed (``json_link``), records under ``results``, the same
page size and modified-date window the project's extractor sends, ``id`` as primary key with the
``merge`` write disposition (the project's loader merges by key too). Nested objects are dlt's default
(``invoiceitem_set`` becomes a child table, the others are flattened into columns).
"""

from __future__ import annotations

import json
import sys
import time


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
    t0 = time.monotonic()
    import dlt
    from dlt.sources.rest_api import rest_api_source

    t_import = time.monotonic() - t0
    source = rest_api_source({
        "client": {
            "base_url": job["base_url"].rstrip("/") + "/",
            "auth": {"type": "api_key", "name": "Authorization", "api_key": f"Token {job['token']}",
                     "location": "header"},
            "paginator": {"type": "json_link", "next_url_path": "next"},
        },
        "resource_defaults": {"primary_key": "id", "write_disposition": job.get("write_disposition", "merge")},
        "resources": [{
            "name": "invoices",
            "endpoint": {
                "path": "api/v1/oms/invoices/",
                "params": {"limit": job["page_size"], "modified_date__gte": job["gte"],
                           "modified_date__lt": job["lt"]},
                "data_selector": "results",
            },
        }],
    })
    pipeline = dlt.pipeline(pipeline_name="bench_akinon", destination=dlt.destinations.duckdb(job["db"]),
                            dataset_name="raw_akinon", pipelines_dir=job["pipelines_dir"])
    t1 = time.monotonic()
    info = pipeline.run(source, loader_file_format=job.get("loader_file_format"))
    t2 = time.monotonic()
    import duckdb

    with duckdb.connect(job["db"], read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM raw_akinon.invoices").fetchone()[0]
        lines = con.execute("SELECT count(*) FROM raw_akinon.invoices__invoiceitem_set").fetchone()[0]
    trace = pipeline.last_trace
    steps = {s.step: round((s.finished_at - s.started_at).total_seconds(), 3) for s in trace.steps
             if s.finished_at and s.started_at}
    print("BENCH-RESULT " + json.dumps({
        "rows": rows, "lines": lines, "seconds": round(t2 - t1, 3), "import_seconds": round(t_import, 3),
        "steps": steps, "dlt_version": dlt.__version__, "duckdb_version": duckdb.__version__,
        "loads": len(info.loads_ids), "vm_hwm_mb": vm_hwm_mb(),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
