"""What the DAG tasks do, as plain functions (the DAG files only wire them; tests call them too).

* :func:`plan` turns a run (its data interval, or the trigger form's params) into one work item per
  entity: the windows to extract and whether it is a full refresh.
* :func:`extract` runs one entity through the engine, one Parquet partition per daily window.
* :func:`load`, :func:`build`, :func:`publish_warehouse` are the warehouse DAG's single-writer steps.

Nothing here runs at import time.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from invoice_warehouse import config

log = logging.getLogger(__name__)
UTC = dt.timezone.utc

#: Where a full refresh starts (no provider has data before this in the simulators).
HISTORY_START = dt.date(2025, 1, 1)
WRITER_POOL = "duckdb_writer"


def api_pool(provider: str) -> str:
    return f"{provider}_api"


def asset_uri(provider: str, entity: str) -> str:
    return f"iwh://landing/{provider}/{entity}"


def _date(value: Any) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC).date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def plan(provider: str, params: Mapping[str, Any], interval_start: dt.datetime | None,
         interval_end: dt.datetime | None) -> list[dict[str, Any]]:
    """One work item per entity of ``provider`` for this run.

    A scheduled (or backfill) run covers its data interval. A manual run may narrow the entities and set
    ``date_start``/``date_end`` (inclusive dates); entities named in ``full_refresh`` are re-extracted
    from the beginning of history and their raw table is rebuilt.
    """
    from invoice_warehouse.registry import get

    spec = get(provider)
    names = [s.name for s in spec.streams]
    wanted = list(params.get("entities") or names)
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise ValueError(f"{provider} has no entities {unknown}; it has {names}")
    full = set(params.get("full_refresh") or [])
    unknown = sorted(full - set(names))
    if unknown:
        raise ValueError(f"full_refresh names unknown {provider} entities {unknown}; it has {names}")
    # A stream fed by the ids of other streams needs them landed for the same window: same refresh.
    for stream in spec.streams:
        if stream.name in wanted:
            for src in stream.ids_from:
                if src.stream not in wanted:
                    wanted.append(src.stream)
                if stream.name in full:
                    full.add(src.stream)
    start = _date(params.get("date_start")) or _date(interval_start)
    end_incl = _date(params.get("date_end"))
    end = end_incl + dt.timedelta(days=1) if end_incl else _date(interval_end)
    if start is None or end is None:
        raise ValueError("no window: trigger with date_start/date_end or run on a schedule")
    if end <= start:
        end = start + dt.timedelta(days=1)  # a manual run with a zero-length interval: its day
    items = []
    for entity in wanted:
        refresh = entity in full
        items.append({
            "provider": provider, "entity": entity,
            "start": (HISTORY_START if refresh else start).isoformat(),
            "end": end.isoformat(),
            "full_refresh": refresh,
            "stage": 2 if spec.stream(entity).ids_from else 1,
        })
    return items


def extract(item: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    """Extract one entity: each daily window of the item becomes (replaces) its own partition."""
    from invoice_warehouse.engine.runner import iter_windows, run_stream
    from invoice_warehouse.registry import HOOKS

    provider, entity = item["provider"], item["entity"]
    hook = HOOKS[provider]()
    client = hook.get_conn()
    spec = hook.spec
    stream = spec.stream(entity)
    start, end = dt.date.fromisoformat(item["start"]), dt.date.fromisoformat(item["end"])
    totals = {"provider": provider, "entity": entity, "windows": 0, "records": 0, "quarantined": 0,
              "pages": 0}
    if item.get("full_refresh") or (stream.window is None and not stream.ids_from):
        # No date filter (full sweep) or a full refresh: one partition for the whole range. A stream
        # fed by ids_from (IDH products) follows its sources' daily windows: its ids are per window.
        windows = [(dt.datetime.combine(start, dt.time(), UTC), dt.datetime.combine(end, dt.time(), UTC),
                    ("full-" if item.get("full_refresh") else "sweep-") + (end - dt.timedelta(days=1)).isoformat())]
    else:
        windows = list(iter_windows(start, end))
        back = int(spec.lookback_days.get(entity, 0))
        if back:
            # Late changes: the run's first window also re-reads the `back` days before it (one wider
            # request, not `back` extra windows); the loader keeps the latest extraction of each record.
            s0, e0, label0 = windows[0]
            windows[0] = (s0 - dt.timedelta(days=back), e0, label0)
    for s, e, label in windows:
        manifest = run_stream(client, spec, stream, start=s, end=e, landing=config.landing_dir(),
                              window_label=label, run_id=run_id,
                              extra_manifest={"full_refresh": bool(item.get("full_refresh"))},
                              full_refresh=bool(item.get("full_refresh")))
        totals["windows"] += 1
        totals["records"] += manifest["records"]
        totals["quarantined"] += manifest["quarantined"]
        totals["pages"] += manifest["pages"]
    if item.get("full_refresh"):
        # The full partition now holds the whole history: older partitions would resurrect records the
        # source has since deleted, so they go (the loader rebuilds the raw table from what is left).
        import shutil

        base = config.landing_dir() / provider / entity
        for part in base.glob("window=*"):
            if part.name != f"window={windows[-1][2]}":
                shutil.rmtree(part, ignore_errors=True)
    totals["requests"] = client.stats.requests
    totals["retries"] = client.stats.retries
    if totals["quarantined"]:
        log.warning("%s.%s: %d records quarantined (see meta.quarantine after the load)", provider,
                    entity, totals["quarantined"])
    return totals


def load(run_id: str, providers: Iterable[str] | None = None) -> list[dict[str, Any]]:
    from invoice_warehouse.registry import PROVIDERS
    from invoice_warehouse.warehouse.load import load_all

    chosen = set(providers or PROVIDERS)
    # Providers not chosen still get their (empty) raw tables, so every dbt source exists.
    audits = load_all(config.work_db(), config.landing_dir(), list(PROVIDERS.values()), run_id=run_id,
                      only_create={p for p in PROVIDERS if p not in chosen})
    for a in audits:
        if a["rows_quarantined"]:
            log.warning("quarantined %s.%s: %d rows", a["provider"], a["entity"], a["rows_quarantined"])
    return audits


def build(as_of_date: str | None = None) -> str:
    """The dbt step: a full build when the dbt project changed (seeds, unit tests), else the daily
    build of every model and its data tests (warehouse/dbt.py: build)."""
    from invoice_warehouse.warehouse import dbt

    return dbt.build(as_of_date=as_of_date)


def publish_warehouse() -> str:
    from invoice_warehouse.warehouse.publish import publish

    return str(publish(config.work_db(), config.published_db()))


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")
