"""Partition manifests: what a landed partition holds (engine/landing.py writes them, the loader reads them).

Plain JSON and paths, no Arrow: the load task reads manifests without importing pyarrow (about 37 MB of
its resident memory).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = "_manifest.json"
_WINDOW, _DATA, _PARQUET = "window=", "data-", ".parquet"


def partition_dir(landing: Path | str, provider: str, entity: str, window: str) -> Path:
    """The directory of one window's partition (``<landing>/<provider>/<entity>/window=<window>``)."""
    return Path(landing) / provider / entity / f"{_WINDOW}{window}"


def data_file_name(batch: str) -> str:
    """The data file of a batch: named after it, which is what lets a listing tell batches apart."""
    return f"{_DATA}{batch}{_PARQUET}"


def write_json_atomic(path: Path, payload: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, sort_keys=True, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_manifests(landing: Path | str, provider: str, entity: str) -> list[dict[str, Any]]:
    """Every committed partition of an entity, oldest window first, with absolute file paths."""
    return committed(list_partitions(landing, provider, entity))


def committed(partitions: list[Partition]) -> list[dict[str, Any]]:
    """The manifests of the listed partitions that have one (the committed ones), in listing order."""
    return [m for m in (read_manifest(p.path) for p in partitions) if m is not None]


def read_manifest(part: Path | str) -> dict[str, Any] | None:
    """The manifest of one partition directory, with absolute file paths (None: nothing committed)."""
    part = Path(part)
    try:
        text = (part / MANIFEST).read_text()
    except FileNotFoundError:
        return None
    m = json.loads(text)
    m["dir"] = str(part)
    m["data_path"] = str(part / m["files"]["data"])
    q = m["files"].get("quarantine")
    m["quarantine_path"] = str(part / q) if q else None
    return m


@dataclass(frozen=True)
class Partition:
    """A partition directory as its listing shows it, no file read: the window, and the batch of the
    data file the manifest names when the listing alone says which (``batch``, else None).

    A daily pipeline adds a partition per entity every day, so whatever reads "every partition" reads
    more each day; a year of daily partitions made the load read 365 manifests per entity, 8,760 in all,
    to find the one new batch of each. The listing is what tells them apart cheaply: a data file is named
    after its batch (``data-<batch>.parquet``) and is renamed into place before the manifest that names
    it, which replaces the one before; older data files are removed only after that. So a directory with a
    manifest and exactly one data file has committed that file's batch. One with two data files (a re-run
    committing, or stopped mid-commit), or without a manifest, is left to its manifest (``batch`` None)."""

    window: str
    path: Path
    has_manifest: bool
    data_batches: tuple[str, ...]
    #: quarantine files left by failed extractions of the window (``failed-quarantine-<batch>.parquet``)
    failed_quarantine: tuple[str, ...] = ()

    @property
    def batch(self) -> str | None:
        return self.data_batches[0] if self.has_manifest and len(self.data_batches) == 1 else None

    @property
    def data_path(self) -> Path | None:
        """The data file of ``batch`` (None when the listing alone does not say which)."""
        return None if self.batch is None else self.path / data_file_name(self.batch)


def list_partitions(landing: Path | str, provider: str, entity: str) -> list[Partition]:
    """The partition directories of an entity, oldest window first (one directory listing each)."""
    base = Path(landing) / provider / entity
    try:
        entries = [e for e in os.scandir(base) if e.name.startswith(_WINDOW) and e.is_dir()]
    except FileNotFoundError:
        return []
    out = []
    for e in sorted(entries, key=lambda e: e.name):
        has_manifest, batches, failed = False, [], []
        for f in os.scandir(e.path):
            if f.name == MANIFEST:
                has_manifest = True
            elif f.name.endswith(_PARQUET):
                if f.name.startswith(_DATA):
                    batches.append(f.name[len(_DATA):-len(_PARQUET)])
                elif f.name.startswith("failed-quarantine-"):
                    failed.append(f.name)
        out.append(Partition(e.name[len(_WINDOW):], Path(e.path), has_manifest, tuple(sorted(batches)),
                             tuple(sorted(failed))))
    return out


def failed_quarantine_files(partitions: list[Partition]) -> list[Path]:
    """Quarantine files left by failed extractions (their pages' raw text and the reason)."""
    return [p.path / name for p in partitions for name in p.failed_quarantine]
