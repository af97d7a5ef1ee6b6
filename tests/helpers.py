"""Test helpers: clients against the simulators, extraction into a temp landing, warehouse builds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb

from invoice_warehouse.engine.hook import build_client
from invoice_warehouse.engine.http import HttpClient, RetryPolicy
from invoice_warehouse.engine.runner import run_stream
from invoice_warehouse.engine.spec import ConnInfo, ProviderSpec
from invoice_warehouse.registry import PROVIDERS
from invoice_warehouse.warehouse.load import load_all
from simulators.server import SimServer

UTC = dt.timezone.utc
FAST_RETRY = RetryPolicy(max_attempts=8, base_delay=0.01, max_delay=0.05, read_timeout=5.0)


def day(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s).replace(tzinfo=UTC)


def conn_info(server: SimServer, provider: str, **overrides: Any) -> ConnInfo:
    """The connection a user would create for ``provider``, pointed at the simulator."""
    creds = dict(server.state.credentials[provider])
    creds.update(overrides)
    password = creds.pop("token", None) or creds.pop("password", None) or creds.pop("client_secret", None)
    login = creds.pop("login", None) or creds.pop("client_id", None)
    if provider in ("dealpos", "shopwave", "redex"):
        # OAuth-style providers keep client id in login, client secret in password, the rest in extra
        pass
    return ConnInfo(conn_id=f"{provider}_default", host=server.base_url(provider), login=login,
                    password=password, extra=creds)


def client(server: SimServer, provider: str, retry: RetryPolicy | None = None, **overrides: Any) -> HttpClient:
    return build_client(PROVIDERS[provider], conn_info(server, provider, **overrides),
                        retry=retry or FAST_RETRY)


def extract(server: SimServer, provider: str, stream: str, start: dt.datetime, end: dt.datetime,
            landing: Path, label: str | None = None, **kw: Any) -> dict[str, Any]:
    spec: ProviderSpec = PROVIDERS[provider]
    return run_stream(client(server, provider), spec, spec.stream(stream), start=start, end=end,
                      landing=landing, window_label=label or start.date().isoformat(), run_id="test", **kw)


def extract_and_load(server: SimServer, providers: list[str], start: dt.datetime, end: dt.datetime,
                     tmp: Path) -> Path:
    """Extract every stream of ``providers`` for [start, end) and load them into tmp/work.duckdb."""
    landing, db = tmp / "landing", tmp / "work.duckdb"
    for p in providers:
        for s in PROVIDERS[p].streams:
            extract(server, p, s.name, start, end, landing)
    load_all(db, landing, [PROVIDERS[p] for p in providers], run_id="test")
    return db


def execute(db: Path, *sql: str) -> None:
    """Run ``sql`` statements on the DuckDB file ``db`` (a test breaking or changing a warehouse copy)."""
    with duckdb.connect(str(db)) as con:
        for statement in sql:
            con.execute(statement)


def query(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()
