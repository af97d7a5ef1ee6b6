"""The extraction engine: runs any stream of any provider into a Parquet partition.

For each slice of the window: request the first page, then either fetch every remaining page
concurrently (when the first page tells the total) or follow the paginator page by page; parse each
record against the stream's schema (bad ones to quarantine with their reason), optionally fan out to a
detail endpoint, and stream typed rows into the partition writer. Memory holds a few pages, not the
volume. Loops and runaways in an API's pagination stop with a clear error.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from invoice_warehouse.engine.collector import bulk_allocation
from invoice_warehouse.engine.crash import crashpoint
from invoice_warehouse.engine.http import ApiError, BadResponse, HttpClient
from invoice_warehouse.engine.landing import PartitionWriter
from invoice_warehouse.engine.manifest import list_partitions, partition_dir, read_manifest
from invoice_warehouse.engine.paginate import PaginationError, Request
from invoice_warehouse.engine.schema import RECORD_DIGEST, RecordError, dumps, record_digest, record_key
from invoice_warehouse.engine.spec import ProviderSpec, Stream

log = logging.getLogger(__name__)

MAX_PAGES = 200_000


@dataclass
class Progress:
    stream: str
    started: float = field(default_factory=time.monotonic)
    pages: int = 0
    records: int = 0
    expected_pages: int | None = None
    _last_log: float = 0.0

    def page(self, n: int, logger: logging.Logger) -> None:
        self.pages += 1
        self.records += n
        now = time.monotonic()
        if now - self._last_log >= 5.0 or (self.expected_pages and self.pages == self.expected_pages):
            self._last_log = now
            rate = self.records / max(now - self.started, 1e-6)
            eta = ""
            if self.expected_pages and self.pages:
                left = (self.expected_pages - self.pages) * (now - self.started) / self.pages
                eta = f", page {self.pages}/{self.expected_pages}, ~{left:.0f}s left"
            logger.info("%s: %d pages, %d records, %.0f rec/s%s", self.stream, self.pages,
                        self.records, rate, eta)


def _page_digest(keys: list[tuple]) -> str:
    return hashlib.sha1(repr(keys).encode()).hexdigest()


class StreamRunner:
    """Runs one stream over one window with a provider's client."""

    def __init__(self, client: HttpClient, provider: ProviderSpec, stream: Stream, writer: PartitionWriter,
                 *, concurrency: int | None = None, logger: logging.Logger | None = None,
                 landed: dict[tuple, Any] | None = None):
        self.client, self.provider, self.stream, self.writer = client, provider, stream, writer
        #: key (as text) -> marker value of the records already landed in earlier windows
        #: (Detail.skip_unchanged's field, or the record digest of Stream.skip_unchanged_records)
        self.landed = landed or {}
        self.unchanged = 0
        self._unchanged_lock = threading.Lock()  # _details runs on the page threads too
        # The variants of a window run side by side (run): one lands its page at a time, and all stop at
        # their next page once one of them has failed (or the task is being stopped).
        self._emit_lock = threading.Lock()
        self._stop = threading.Event()
        marker = stream.unchanged_detail_marker
        self._marker = next((f for f in stream.schema.fields if f.name == marker), None) if marker else None
        self._digest = stream.skip_unchanged_records
        self._key_sources = [next((f.source for f in stream.schema.fields if f.name == k), k)
                             for k in stream.primary_key]
        self.concurrency = max(1, concurrency or provider.max_concurrency)
        self.log = logger or log
        self.progress = Progress(f"{provider.name}.{stream.name}")
        self.declared_totals: list[int] = []
        self.seen_requests: set[str] = set()

    # --- one page ----------------------------------------------------------------------------------
    def _fetch(self, req: Request) -> tuple[Any, list] | None:
        fp = req.fingerprint()
        if fp in self.seen_requests:
            raise PaginationError(
                f"{self.progress.stream}: pagination loop: {req.path} with {dict(req.params)} was already "
                "read in this run (the API's next link points back to a page already read)")
        self.seen_requests.add(fp)
        if len(self.seen_requests) > MAX_PAGES:
            raise PaginationError(f"{self.progress.stream}: more than {MAX_PAGES} pages; runaway pagination")
        try:
            body, _resp = self.client.request_json(req.method, req.path, params=req.params,
                                                   json_body=req.json, headers=req.headers)
        except BadResponse as exc:
            # A page that stays unreadable after retries is quarantined whole (nothing lost silently)
            # and the stream fails: its records are not in the partition.
            with self._emit_lock:  # the writer is shared with the thread that lands pages
                self.writer.quarantine(exc.body.decode("utf-8", "replace")[:1_000_000], str(exc),
                                       f"{req.path} {dict(req.params)}")
            raise
        try:
            records = self.stream.tag_records(req, self.stream.extract_records(body))
        except ValueError as exc:
            raise ApiError(f"{self.progress.stream}: unexpected response shape from {req.path}: {exc}") from exc
        return body, records

    def _is_unchanged(self, rec: Any) -> bool:
        """The listed record's marker equals the one landed for its key in an earlier window."""
        if not isinstance(rec, dict):
            return False
        key = self._listed_key(rec)
        if key not in self.landed:
            return False
        try:
            value = self._marker.parse(rec.get(self._marker.source))
        except (RecordError, ValueError):
            return False
        return value is not None and value == self.landed[key]

    def _listed_key(self, rec: dict) -> tuple:
        """A listed record's primary key as text, as ``landed_markers`` keys the landed ones."""
        return tuple(None if v is None else str(v) for v in (rec.get(s) for s in self._key_sources))

    def _details(self, records: list, pool: ThreadPoolExecutor) -> list:
        details = self.stream.details
        if not details or not records:
            return records
        if self.landed and self._marker is not None:
            kept = [r for r in records if not self._is_unchanged(r)]
            with self._unchanged_lock:
                self.unchanged += len(records) - len(kept)
            records = kept
            if not records:
                return records

        def one(rec: Any) -> Any:
            if not isinstance(rec, dict):
                return rec
            for d in details:
                try:
                    path = d.path.format(**rec)
                except (KeyError, IndexError):
                    return rec  # the record goes to quarantine via its missing key
                body, _ = self.client.request_json("GET", path, params=dict(d.params))
                detail = body if not d.records else body.get(d.records) if isinstance(body, dict) else None
                if isinstance(detail, dict):
                    rec = {**rec, d.into: detail} if d.into else {**rec, **detail}
            return rec

        return list(pool.map(one, records))

    def _emit(self, req: Request, records: list) -> list[tuple]:
        with self._emit_lock:
            return self._emit_page(req, records)

    def _emit_page(self, req: Request, records: list) -> list[tuple]:
        rows, keys = [], []
        pk = self.stream.primary_key
        skipped = 0
        for rec in records:
            if self._digest:
                digest = record_digest(rec)
                if digest is not None and self.landed:
                    listed = self._listed_key(rec)
                    if self.landed.get(listed) == digest:
                        # Unchanged since an earlier window's partition, which still holds it.
                        skipped += 1
                        keys.append(listed)
                        continue
            try:
                row = self.stream.schema.parse(rec)
                key = record_key(row, pk)
                if any(k is None for k in key):
                    raise RecordError(f"primary key {pk} is missing")
            except RecordError as exc:
                self.writer.quarantine(_raw(rec), str(exc), f"{req.path} {dict(req.params)}")
                continue
            if self._digest:
                row[RECORD_DIGEST] = digest
            rows.append(row)
            keys.append(key)
        self.writer.write(rows)
        crashpoint("extract.after_page")
        with self._unchanged_lock:
            self.unchanged += skipped
        self.progress.page(len(records) - skipped, self.log)
        return keys

    # --- a slice -----------------------------------------------------------------------------------
    def _run_slice(self, first: Request, pool: ThreadPoolExecutor, detail_pool: ThreadPoolExecutor) -> None:
        paginator = self.stream.paginator()
        req = paginator.first(first)
        fetched = self._fetch(req)
        assert fetched is not None
        body, records = fetched
        first_keys = self._emit(req, self._details(records, detail_pool))
        last_digest = _page_digest(first_keys) if first_keys else None
        rest = paginator.remaining(req, body, records)
        if rest:
            with self._emit_lock:
                self.progress.expected_pages = (self.progress.expected_pages or 0) + len(rest) + 1
            last_req, last_body, last_records = req, body, records
            window: list[tuple[Request, Future]] = []
            it = iter(rest)
            for r in it:  # keep at most 2x concurrency pages in flight: memory stays bounded
                self._check_stop()
                window.append((r, pool.submit(self._fetch_detailed, r, detail_pool)))
                if len(window) >= 2 * self.concurrency:
                    last_req, last_body, last_records = self._drain(window.pop(0))
            while window:
                last_req, last_body, last_records = self._drain(window.pop(0))
            req, body, records = last_req, last_body, last_records
        while True:
            nxt = paginator.next(req, body, records)
            if nxt is None:
                break
            self._check_stop()
            req = nxt
            body, records = self._fetch(req)  # type: ignore[misc]
            keys = self._emit(req, self._details(records, detail_pool))
            digest = _page_digest(keys) if keys else None
            if digest is not None and digest == last_digest:
                raise PaginationError(
                    f"{self.progress.stream}: {req.path} {dict(req.params)} returned exactly the records of "
                    "the previous page; the API is ignoring the page parameter (runaway pagination)")
            last_digest = digest
        if paginator.declared_total is not None:
            self.declared_totals.append(paginator.declared_total)

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise ApiError(f"{self.progress.stream}: stopped (another variant of the window failed, or the "
                           "task is being stopped)")

    def _fetch_detailed(self, req: Request, detail_pool: ThreadPoolExecutor) -> tuple[Any, list, list]:
        """A page fetched ahead (on a page thread), then its records' details: the details of one page
        are fetched while the main thread lands earlier pages, rather than the main thread waiting a
        round trip for them page after page. Returns (body, listed records, records with details)."""
        body, records = self._fetch(req)  # type: ignore[misc]
        return body, records, self._details(records, detail_pool)

    def _drain(self, item: tuple[Request, Future]) -> tuple[Request, Any, list]:
        """Land the oldest page in flight (pages land in the order they were requested)."""
        r, fut = item
        body, records, detailed = fut.result()
        self._emit(r, detailed)
        return r, body, records

    def _run_ids(self, reqs: list[Request], pool: ThreadPoolExecutor, detail_pool: ThreadPoolExecutor) -> None:
        """One single-object request per id (``Stream.ids_from``), fetched concurrently, bounded."""
        self.progress.expected_pages = (self.progress.expected_pages or 0) + len(reqs)
        window: list[tuple[Request, Future]] = []
        for r in reqs:
            window.append((r, pool.submit(self._fetch_detailed, r, detail_pool)))
            if len(window) >= 2 * self.concurrency:
                self._drain(window.pop(0))
        while window:
            self._drain(window.pop(0))

    def run(self, start: dt.datetime, end: dt.datetime, ids: list[str] | None = None) -> dict[str, Any]:
        """Extract [start, end); with ``ids`` (an ``ids_from`` stream) fetch one request per id instead."""
        if ids is not None:
            sources = ", ".join(f"{s.stream}.{s.column}" for s in self.stream.ids_from)
            slices = [(f"{len(ids)} ids from {sources}", None)]
        else:
            slices = list(self.stream.requests_for(start, end))
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"{self.provider.name}-page") as pool, \
                ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"{self.provider.name}-detail") as dpool:
            if ids is not None:
                self.log.info("%s: %s", self.progress.stream, slices[0][0])
                self._run_ids(list(self.stream.requests_for_ids(ids)), pool, dpool)
            else:
                # The variants of one window (REDEX's payables and receivables, IDH's two payment types)
                # are read side by side: each is a list of its own, and its first page is a round trip
                # the other need not wait for. Windows still run one after another.
                per_window = len(self.stream.variants) or 1
                for i in range(0, len(slices), per_window):
                    group = slices[i:i + per_window]
                    for label, _ in group:
                        self.log.info("%s: slice %s", self.progress.stream, label)
                    if len(group) == 1:
                        self._run_slice(group[0][1], pool, dpool)
                        continue
                    vp = ThreadPoolExecutor(len(group), thread_name_prefix=f"{self.provider.name}-variant")
                    try:
                        running = [vp.submit(self._run_slice, first, pool, dpool) for _, first in group]
                        for fut in as_completed(running):
                            fut.result()  # the first failure (or an interruption here) stops the others
                    except BaseException:
                        self._stop.set()
                        raise
                    finally:
                        vp.shutdown(wait=True, cancel_futures=True)
        elapsed = time.monotonic() - self.progress.started
        read = self.progress.records
        declared = sum(self.declared_totals) if self.declared_totals else None
        if declared is not None and declared != read + self.unchanged:
            self.log.warning("%s: the API declared %d records but %d were read (page drift or a total "
                             "that lies); duplicates are resolved by key at load", self.progress.stream,
                             declared, read)
        if self.landed:
            self.log.info("%s: %d listed records unchanged since an earlier window, not landed again",
                          self.progress.stream, self.unchanged)
        self.log.info("%s: done, %d records in %d pages, %d quarantined, %.1fs", self.progress.stream,
                      self.writer.rows + len(self.writer._buf), self.progress.pages, self.writer.quarantined,
                      elapsed)
        return {
            "pages": self.progress.pages,
            "records_read": read,
            "declared_total": declared,
            "slices": [label for label, _ in slices],
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
            "seconds": round(elapsed, 3),
            "unchanged_skipped": self.unchanged,
            **self.client.stats.as_dict(),
        }


def _raw(rec: Any) -> str:
    try:
        return dumps(rec)
    except (TypeError, ValueError):
        return repr(rec)


def run_stream(client: HttpClient, provider: ProviderSpec, stream: Stream, *, start: dt.datetime,
               end: dt.datetime, landing: Path | str, window_label: str, run_id: str,
               concurrency: int | None = None, logger: logging.Logger | None = None,
               extra_manifest: dict[str, Any] | None = None, full_refresh: bool = False) -> dict[str, Any]:
    """Extract one stream for [start, end) into its partition; return the committed manifest."""
    extracted_at = dt.datetime.now(dt.timezone.utc)
    landed = None
    if stream.unchanged_marker and not full_refresh:
        landed = landed_markers(landing, provider.name, stream, window_label)
    writer = PartitionWriter(landing, provider.name, stream.name, window_label, stream.schema, run_id,
                             extracted_at)
    runner = StreamRunner(client, provider, stream, writer, concurrency=concurrency, logger=logger,
                          landed=landed)
    try:
        ids = landed_ids(landing, provider.name, stream, window_label) if stream.ids_from else None
        with bulk_allocation():
            stats = runner.run(start, end, ids=ids)
    except BaseException:
        writer.abort()
        raise
    return writer.commit({**stats, **(extra_manifest or {})})


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _values(column: Any) -> list:
    """A landed column's values as the schema's parsers give them. UTC timestamps are read as their
    microseconds: pyarrow's ``to_pylist`` of a zoned timestamp imports pandas (a task's fixed 0.3 s),
    and ``pq.ParquetFile`` rather than ``pq.read_table`` for the same reason."""
    if pa.types.is_timestamp(column.type) and column.type.unit == "us":
        return [None if v is None else _EPOCH + dt.timedelta(microseconds=v)
                for v in column.cast(pa.int64()).to_pylist()]
    return column.to_pylist()


#: The fold of an entity's landed markers, kept beside its partitions (see ``landed_markers``).
MARKER_CACHE = "_landed_markers.parquet"
_CACHE_FORMAT = "1"


def landed_markers(landing: Path | str, provider: str, stream: Stream, window_label: str) -> dict[tuple, Any]:
    """Key -> ``stream.unchanged_marker`` of the records landed in partitions of windows before
    ``window_label`` (the latest extraction of a key wins). Only earlier windows count: the partition
    being replaced never vouches for itself, and the earliest partition holding a record never drops
    it, so every record stays in some partition whichever windows are re-run, even at the same time.

    A daily pipeline adds a partition every day, and reading them all made the daily extract of a
    stream with a marker slower by the day (a year of daily partitions: 365 files a run). So the fold is
    kept in the entity's directory (``MARKER_CACHE``) with the window and batch of every partition it
    holds, and a run reads it and only the partitions after its last window. It is used only when every
    partition it holds is still there with the same batch, before ``window_label``, and every partition
    not in it comes after them (the fold's order, and so which of two equal times wins, is the same);
    otherwise (a window re-run, an older window run, an unreadable file) every partition is read again,
    and the fold written anew. It is written to a temporary name and renamed, so readers and concurrent
    writers see one whole fold or another, each true of the partitions it names."""
    marker = stream.unchanged_marker
    pk = list(stream.primary_key)
    base = Path(landing) / provider / stream.name
    parts: dict[str, tuple[str, Path]] = {}  # window -> (committed batch, its data file)
    for p in list_partitions(landing, provider, stream.name):
        if p.window >= window_label:
            continue
        if p.batch is not None:
            parts[p.window] = (p.batch, p.data_path)
        else:
            m = read_manifest(p.path)
            if m is not None:
                parts[p.window] = (m["batch_id"], Path(m["data_path"]))
    out: dict[tuple, Any] = {}
    newest: dict[tuple, Any] = {}
    covered: dict[str, str] = {}
    marker_type = None
    cache = _read_marker_cache(base / MARKER_CACHE, pk, marker)
    if cache is not None:
        held, rows, marker_type = cache
        later = [w for w in parts if w not in held]
        if all(parts.get(w, ("",))[0] == b for w, b in held.items()) and (
                not later or not held or min(later) > max(held)):
            covered = held
            for key, value, at in rows:
                newest[key], out[key] = at, value
    todo = sorted(w for w in parts if w not in covered)
    for w in todo:
        data = pq.ParquetFile(parts[w][1])
        if marker not in data.schema_arrow.names:
            continue  # landed before the stream had the marker (a record digest): vouches for nothing
        table = data.read(columns=[*pk, marker, "_extracted_at"])
        marker_type = marker_type or table.schema.field(marker).type
        cols = [_values(table.column(c)) for c in (*pk, marker, "_extracted_at")]
        for *key, value, at in zip(*cols, strict=True):
            k = tuple(None if v is None else str(v) for v in key)
            if k not in newest or at > newest[k]:
                newest[k], out[k] = at, value
    if todo:
        _write_marker_cache(base / MARKER_CACHE, {w: parts[w][0] for w in parts}, out, newest, pk, marker,
                            marker_type)
    return out


def _read_marker_cache(path: Path, pk: list[str], marker: str | None) -> tuple[dict, list, Any] | None:
    """(window -> batch held, [(key, marker, extracted at)], the marker's Arrow type) of a fold made for
    this key and marker, or None (none, another key or marker, or unreadable: the partitions are read)."""
    try:
        data = pq.ParquetFile(path)
        meta = data.schema_arrow.metadata or {}
        if (meta.get(b"iwh_format") != _CACHE_FORMAT.encode() or json.loads(meta[b"iwh_key"]) != pk
                or meta[b"iwh_marker"].decode() != marker):
            return None
        held = json.loads(meta[b"iwh_partitions"])
        table = data.read()
        keys = [table.column(f"key_{i}").to_pylist() for i in range(len(pk))]
        values, ats = _values(table.column("marker")), _values(table.column("_extracted_at"))
        rows = [(tuple(k), v, at) for *k, v, at in zip(*keys, values, ats, strict=True)]
        return held, rows, table.schema.field("marker").type
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - a cache: any doubt and the partitions are read again
        log.warning("%s: unreadable, reading the partitions instead", path, exc_info=True)
        return None


def _write_marker_cache(path: Path, held: dict[str, str], out: dict[tuple, Any], newest: dict[tuple, Any],
                        pk: list[str], marker: str | None, marker_type: Any) -> None:
    keys = list(out)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        arrays = [pa.array([k[i] for k in keys], pa.string()) for i in range(len(pk))]
        arrays.append(pa.array([out[k] for k in keys], marker_type or pa.string()))
        arrays.append(pa.array([newest[k] for k in keys], pa.timestamp("us", tz="UTC")))
        names = [f"key_{i}" for i in range(len(pk))] + ["marker", "_extracted_at"]
        meta = {"iwh_format": _CACHE_FORMAT, "iwh_key": json.dumps(pk), "iwh_marker": marker or "",
                "iwh_partitions": json.dumps(held, sort_keys=True)}
        table = pa.Table.from_arrays(arrays, names=names).replace_schema_metadata(meta)
        pq.write_table(table, tmp, compression="snappy")
        os.replace(tmp, path)
    except Exception:  # noqa: BLE001 - a cache: the next run reads the partitions again
        log.warning("%s: not written", path, exc_info=True)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def landed_ids(landing: Path | str, provider: str, stream: Stream, window_label: str) -> list[str]:
    """The distinct ids (sorted, as strings) that ``stream.ids_from`` finds in the partitions of the same
    window already landed by its source streams. A source not landed yet for that window is an error
    (the source stream must run first), never an empty list."""
    ids: set[str] = set()
    for src in stream.ids_from:
        manifest = read_manifest(partition_dir(landing, provider, src.stream, window_label))
        if manifest is None:
            raise RuntimeError(f"{provider}.{stream.name}: needs {provider}.{src.stream} landed for window "
                               f"{window_label} first (its ids come from {src.stream}.{src.column})")
        if not manifest["records"]:
            continue
        table = pq.ParquetFile(manifest["data_path"]).read(columns=[src.column])
        for batch in table.to_batches():
            for value in _values(batch.column(0)):
                if value is None:
                    continue
                for i in (src.extract(value) if src.extract else (value,)):
                    if i is not None and str(i) != "":
                        ids.add(str(i))
    return sorted(ids)


def iter_windows(start: dt.date, end: dt.date) -> Iterator[tuple[dt.datetime, dt.datetime, str]]:
    """Daily [day, day+1) UTC windows covering [start, end) with their partition labels."""
    d = start
    while d < end:
        s = dt.datetime(d.year, d.month, d.day, tzinfo=dt.timezone.utc)
        yield s, s + dt.timedelta(days=1), d.isoformat()
        d += dt.timedelta(days=1)
