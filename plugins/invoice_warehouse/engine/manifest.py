"""Partition manifests: what a landed partition holds (engine/landing.py writes them, the loader reads them).

Plain JSON and paths, no Arrow: the load task reads manifests without importing pyarrow (about 37 MB of
its resident memory).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

MANIFEST = "_manifest.json"


def write_json_atomic(path: Path, payload: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, sort_keys=True, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_manifests(landing: Path | str, provider: str, entity: str) -> list[dict[str, Any]]:
    """Every committed partition of an entity, oldest window first, with absolute file paths."""
    base = Path(landing) / provider / entity
    out = []
    if not base.exists():
        return out
    for part in sorted(base.glob("window=*")):
        mf = part / MANIFEST
        if not mf.exists():
            continue
        m = json.loads(mf.read_text())
        m["dir"] = str(part)
        m["data_path"] = str(part / m["files"]["data"])
        q = m["files"].get("quarantine")
        m["quarantine_path"] = str(part / q) if q else None
        out.append(m)
    return out


def failed_quarantine_files(landing: Path | str, provider: str, entity: str) -> list[Path]:
    """Quarantine files left by failed extractions (their pages' raw text and the reason)."""
    base = Path(landing) / provider / entity
    return sorted(base.glob("window=*/failed-quarantine-*.parquet")) if base.exists() else []
