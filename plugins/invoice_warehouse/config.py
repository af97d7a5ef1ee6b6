"""Where things live. Environment variables only (never Airflow Variables: nothing here touches a
database, so DAG files may import it at parse time).

    IWH_HOME        project root (default: the checkout this package lives in)
    IWH_DATA_DIR    landed Parquet, warehouse files, dbt artifacts (default: $IWH_HOME/data)
    IWH_DUCKDB_MEMORY_LIMIT, IWH_DUCKDB_THREADS
                    DuckDB's memory_limit (default 128MB: the load streams Parquet into tables and spills
                    beyond it) and threads (default: DuckDB's own, all cores) for the load task
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("IWH_HOME") or Path(__file__).resolve().parents[2])


def data_dir() -> Path:
    return Path(os.environ.get("IWH_DATA_DIR") or home() / "data")


def landing_dir() -> Path:
    return data_dir() / "landing"


def work_db() -> Path:
    """The warehouse file the pipeline writes (load + dbt). Only one writer at a time (the pool)."""
    return data_dir() / "warehouse" / "work.duckdb"


def published_db() -> Path:
    """The warehouse file analysts read; replaced atomically after a successful build."""
    return data_dir() / "warehouse" / "warehouse.duckdb"


def dbt_project_dir() -> Path:
    return home() / "dbt_project"


LOAD_MEMORY_LIMIT = "128MB"


def duckdb_config() -> dict[str, str]:
    """DuckDB settings of the load task's connection, from IWH_DUCKDB_MEMORY_LIMIT / IWH_DUCKDB_THREADS.

    The load reads Parquet straight into tables that are written to the file as their row groups fill,
    so it needs little memory: a worker that runs other tasks beside it is not asked for DuckDB's
    default (80% of RAM). Anything larger than the limit (a wide merge) spills to a temp directory.
    Raw tables are keyed, their row order means nothing: without ``preserve_insertion_order`` DuckDB
    inserts a large batch from both threads without buffering it in order, twice as fast under the cap."""
    out = {"memory_limit": LOAD_MEMORY_LIMIT, "preserve_insertion_order": "false"}
    for key in ("memory_limit", "threads"):
        value = os.environ.get(f"IWH_DUCKDB_{key.upper()}")
        if value:
            out[key] = value
    return out


@contextmanager
def environ(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, with None, unset) environment variables for the block, then restore them."""
    before = {k: os.environ.get(k) for k in values}

    def apply(items: Mapping[str, str | None]) -> None:
        for k, v in items.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    try:
        apply(values)
        yield
    finally:
        apply(before)
