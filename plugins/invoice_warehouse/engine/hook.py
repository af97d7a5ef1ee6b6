"""The generic provider hook: an Airflow connection in, a ready HTTP client out.

Each provider's hook is a three-line subclass naming its spec (see providers/*.py). The connection is
read lazily (never at import or DAG parse time); every credential and every token issued is registered
with Airflow's secret masker so it cannot reach a log line.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any, ClassVar

from invoice_warehouse.engine.http import ApiError, HttpClient, RateLimiter, RetryPolicy
from invoice_warehouse.engine.spec import ConnInfo, ProviderSpec

try:  # Airflow present: a real hook with masking. Without it (benchmarks' venv) the engine still works.
    from airflow.sdk import BaseHook
except ImportError:  # pragma: no cover - exercised only outside Airflow
    BaseHook = object  # type: ignore[assignment,misc]


def _mask_secret(secret: Any) -> None:
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - no Airflow: nothing to mask for
        return
    mask_secret(secret)

log = logging.getLogger(__name__)


def mask(secret: str) -> None:
    if secret:
        _mask_secret(secret)


def scaled_rate_limit(spec: ProviderSpec) -> tuple[int, float] | None:
    """The provider's documented limit; IWH_RATE_WINDOW_SCALE shrinks the window (benchmarks only)."""
    if not spec.rate_limit:
        return None
    calls, period = spec.rate_limit
    return calls, period * float(os.environ.get("IWH_RATE_WINDOW_SCALE", "1"))


def build_client(spec: ProviderSpec, conn: ConnInfo, *, retry: RetryPolicy | None = None,
                 on_secret: Callable[[str], None] = mask, **kw: Any) -> HttpClient:
    """An HttpClient for ``spec`` from connection parts (used by the hook, the tests and the benchmarks)."""
    if not conn.host:
        raise ValueError(f"connection {conn.conn_id!r} has no host (the provider's base URL)")
    holder: list[HttpClient] = []

    def secret(value: str) -> None:
        on_secret(value)
        if holder:
            holder[0].add_secret(value)
        else:
            pending.append(value)

    pending: list[str] = []
    for s in conn.secrets():
        secret(s)
    limit = scaled_rate_limit(spec)
    host = conn.host if "://" in conn.host else f"https://{conn.host}"
    verify = conn.extra.get("verify_tls", True) not in (False, "false", "False", "0")
    client = HttpClient(
        host,
        conn_id=conn.conn_id,
        auth=spec.auth(conn, secret),
        retry=retry,
        rate_limiter=RateLimiter(*limit) if limit else None,
        default_headers=spec.default_headers,
        body_check=spec.body_check,
        verify=verify,
        pool_size=max(16, spec.max_concurrency * 2),
        **kw,
    )
    holder.append(client)
    for value in pending:
        client.add_secret(value)
    return client


class ProviderHook(BaseHook):  # type: ignore[misc,valid-type]
    """Base of every provider hook. Subclasses set ``spec``, ``conn_type``, ``default_conn_name``,
    ``hook_name``."""

    spec: ClassVar[ProviderSpec]
    conn_name_attr = "conn_id"
    default_conn_name = ""
    conn_type = ""
    hook_name = ""

    def __init__(self, conn_id: str | None = None, **kwargs: Any):
        if BaseHook is not object:
            super().__init__(**kwargs)
        self.conn_id = conn_id or self.default_conn_name
        self._client: HttpClient | None = None

    def conn_info(self) -> ConnInfo:
        conn = self.get_connection(self.conn_id)
        extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else json.loads(conn.extra or "{}")
        host = conn.host or ""
        if conn.port and "://" in host and host.count(":") == 1:
            host = f"{host.rstrip('/')}:{conn.port}"
        return ConnInfo(conn_id=self.conn_id, host=host, login=conn.login, password=conn.password,
                        extra=extra)

    def get_conn(self) -> HttpClient:
        if self._client is None:
            self._client = build_client(self.spec, self.conn_info())
        return self._client

    def test_connection(self) -> tuple[bool, str]:
        """Authenticate and make one cheap read (the Test button of the connection form)."""
        try:
            client = self.get_conn()
            client.request_json("GET", self.spec.test_path, params=dict(self.spec.test_params))
        except (ApiError, ValueError, OSError) as exc:
            return False, str(exc)
        return True, f"Connected to {self.spec.title}"
