"""Build into the working file, then publish: copy it and swap the copy in with one rename.

Analysts open the published file read-only. On POSIX a rename replaces the directory entry, so a reader
holding the old file keeps reading the old, complete warehouse, and the next connection sees the new
one: a reader never blocks a build, and never sees a half-built or failed build (publish only runs after
load and dbt succeeded; a failure leaves the last good file in place).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import duckdb

from invoice_warehouse.engine.crash import crashpoint


def publish(work_db: Path | str, published_db: Path | str) -> Path:
    work, published = Path(work_db), Path(published_db)
    if not work.exists():
        raise FileNotFoundError(f"no working warehouse at {work}; run the load first")
    with duckdb.connect(str(work)) as con:
        con.execute("CHECKPOINT")  # everything in the main file, nothing left in the WAL
    published.parent.mkdir(parents=True, exist_ok=True)
    for left in published.parent.glob(f".{published.name}.*.tmp"):  # copies of killed publishes
        if left.stat().st_mtime < time.time() - 3600:
            left.unlink(missing_ok=True)
    tmp = published.with_name(f".{published.name}.{uuid.uuid4().hex}.tmp")
    try:
        shutil.copyfile(work, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        crashpoint("publish.before_rename")
        os.replace(tmp, published)
    finally:
        tmp.unlink(missing_ok=True)
    return published
