"""Parquet landing: one partition per provider / entity / window, written atomically.

Layout::

    <landing>/<provider>/<entity>/window=<label>/
        data-<batch>.parquet        typed records of that extraction
        quarantine-<batch>.parquet  records/pages that could not be parsed, with the reason and raw text
        _manifest.json              what the partition holds; written last, by rename
    <landing>/<provider>/<entity>/_landed_markers.parquet
                                    streams that skip unchanged records: the markers of the partitions
                                    it names (runner.landed_markers; a cache, rebuilt when in doubt)

Files are streamed into ``*.tmp`` names and renamed into place; the manifest is renamed last and names
the data file of its batch, so a reader that goes through the manifest never sees a half-written file,
and a re-run of the same window replaces the partition as a whole (older batches are then removed).
"""

from __future__ import annotations

import datetime as dt
import io
import os
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from invoice_warehouse.engine.crash import crashpoint
from invoice_warehouse.engine.manifest import MANIFEST, data_file_name, partition_dir, write_json_atomic
from invoice_warehouse.engine.schema import Schema

QUARANTINE_SCHEMA = pa.schema([
    pa.field("provider", pa.string()),
    pa.field("entity", pa.string()),
    pa.field("reason", pa.string()),
    pa.field("raw", pa.string()),
    pa.field("source", pa.string()),
    pa.field("_extracted_at", pa.timestamp("us", tz="UTC")),
    pa.field("_run_id", pa.string()),
    pa.field("_window", pa.string()),
    pa.field("_batch_id", pa.string()),
])

_ROW_ENCODER = msgspec.json.Encoder(decimal_format="string")


def rows_to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """The Arrow table of typed rows (str, int, bool, Decimal, aware datetime, date or None per column).

    The rows go through Arrow's C++ JSON reader with the table's schema given: msgspec writes them as
    JSON lines (decimals as their exact text, datetimes as RFC 3339), Arrow parses every column
    straight into its type. ``pa.Table.from_pylist`` gives the same table, but its first call in a
    process imports pandas (about 0.3 s), a cost every extract task would pay whatever its volume;
    date columns are read as text and cast, the one type the JSON reader does not parse.
    """
    json_schema = pa.schema([pa.field(f.name, pa.string()) if pa.types.is_date(f.type) else f
                             for f in schema])
    body = _ROW_ENCODER.encode_lines(rows)
    table = pajson.read_json(
        io.BytesIO(body),
        read_options=pajson.ReadOptions(use_threads=False, block_size=len(body) + 1),
        parse_options=pajson.ParseOptions(explicit_schema=json_schema, unexpected_field_behavior="ignore"))
    for i, f in enumerate(schema):
        if pa.types.is_date(f.type):
            table = table.set_column(i, f, table.column(i).cast(f.type))
    return table


class PartitionWriter:
    """Streams typed rows (and quarantined records) of one window into its partition."""

    def __init__(self, landing: Path | str, provider: str, entity: str, window: str, schema: Schema,
                 run_id: str, extracted_at: dt.datetime, flush_rows: int = 2_000):
        self.dir = partition_dir(landing, provider, entity, window)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.provider, self.entity, self.window = provider, entity, window
        self.schema = schema
        self.arrow_schema = schema.arrow_schema()
        self.batch_id = f"{extracted_at:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
        self.meta = {"_extracted_at": extracted_at, "_run_id": run_id, "_window": window,
                     "_batch_id": self.batch_id}
        self.data_name = data_file_name(self.batch_id)
        self.quarantine_name = f"quarantine-{self.batch_id}.parquet"
        self._tmp = self.dir / f".{self.data_name}.tmp"
        self._qtmp = self.dir / f".{self.quarantine_name}.tmp"
        # Dictionary pages pay for repeated values (statuses, currencies, ids of a few stores), not for
        # nested JSON text, which is unique per record: those columns are written plain.
        plain = {f.name for f in schema.fields if f.type == "json"} | {"_extra"}
        self._writer = pq.ParquetWriter(self._tmp, self.arrow_schema, compression="snappy",
                                        use_dictionary=[n for n in self.arrow_schema.names if n not in plain])
        self._qwriter: pq.ParquetWriter | None = None
        self._buf: list[dict[str, Any]] = []
        # Batches are converted and written on a thread of their own, one at a time and at most one
        # behind: Arrow's JSON reader and the Parquet encoder release the GIL, so they run on another
        # core while the extraction goes on parsing pages.
        self._io = ThreadPoolExecutor(1, thread_name_prefix=f"landing-{provider}-{entity}")
        self._pending: Future | None = None
        self._flush_rows = flush_rows
        self.rows = 0
        self.quarantined = 0
        self.quarantine_reasons: dict[str, int] = {}

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            row.update(self.meta)
            self._buf.append(row)
        if len(self._buf) >= self._flush_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        rows, self._buf = self._buf, []
        self._wait()  # the previous batch is written (its error, if any, is raised here)
        self._pending = self._io.submit(self._write_batch, rows)
        self.rows += len(rows)

    def _write_batch(self, rows: list[dict[str, Any]]) -> None:
        self._writer.write_table(rows_to_table(rows, self.arrow_schema))

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def quarantine(self, raw: str, reason: str, source: str) -> None:
        if self._qwriter is None:
            self._qwriter = pq.ParquetWriter(self._qtmp, QUARANTINE_SCHEMA, compression="snappy")
        row = {"provider": self.provider, "entity": self.entity, "reason": reason, "raw": raw,
               "source": source, **self.meta}
        self._qwriter.write_table(rows_to_table([row], QUARANTINE_SCHEMA))
        self.quarantined += 1
        key = reason.split(":")[0][:80]
        self.quarantine_reasons[key] = self.quarantine_reasons.get(key, 0) + 1

    def abort(self) -> None:
        """The extraction failed: drop the data, but keep what was quarantined (a failed page's raw text
        and reason) as ``failed-quarantine-<batch>.parquet``; the loader moves it to meta.quarantine."""
        try:
            self._wait()
        except Exception:  # noqa: BLE001 - the data is dropped anyway
            pass
        self._io.shutdown(wait=True)
        for w in (self._writer, self._qwriter):
            if w is not None:
                try:
                    w.close()
                except Exception:  # noqa: BLE001 - best effort on the failure path
                    pass
        self._tmp.unlink(missing_ok=True)
        if self._qwriter is not None and self._qtmp.exists():
            os.replace(self._qtmp, self.dir / f"failed-{self.quarantine_name}")

    def commit(self, stats: dict[str, Any]) -> dict[str, Any]:
        """Rename data (and quarantine) into place, then the manifest; drop older batches."""
        self._flush()
        self._wait()
        self._io.shutdown(wait=True)
        self._writer.close()
        os.replace(self._tmp, self.dir / self.data_name)
        files = {"data": self.data_name, "quarantine": None}
        if self._qwriter is not None:
            self._qwriter.close()
            os.replace(self._qtmp, self.dir / self.quarantine_name)
            files["quarantine"] = self.quarantine_name
        manifest = {
            "provider": self.provider, "entity": self.entity, "window": self.window,
            "batch_id": self.batch_id, "run_id": self.meta["_run_id"],
            "extracted_at": self.meta["_extracted_at"].isoformat(),
            "records": self.rows, "quarantined": self.quarantined,
            "quarantine_reasons": self.quarantine_reasons, "files": files,
            "schema": {f.name: f.type for f in self.schema.fields},
            **stats,
        }
        crashpoint("landing.before_manifest")
        write_json_atomic(self.dir / MANIFEST, manifest)
        keep = {self.data_name, self.quarantine_name, MANIFEST}
        stale = time.time() - 3600  # temp files of extractions killed over an hour ago
        for tmp in self.dir.glob(".*.tmp"):
            if tmp.stat().st_mtime < stale:
                tmp.unlink(missing_ok=True)
        for old in self.dir.iterdir():
            if old.name not in keep and not old.name.startswith((".", "failed-")):
                old.unlink(missing_ok=True)
        return manifest
