"""Auth strategies: a static token, and a cached token obtained by a provider's grant.

The grant itself (client credentials, refresh token, api-key) is a small function in the provider's spec;
this module caches the token, refreshes it shortly before it expires, and refreshes once on a 401.
Every token issued is handed to ``on_secret`` (Airflow's secret masker) before it is used.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from invoice_warehouse.engine.http import Auth, HttpClient


def _noop(_secret: str) -> None:
    return None


class StaticTokenAuth(Auth):
    """``<header>: <scheme> <token>`` (IDH, Akinon). No refresh: a 401 fails with a clear error."""

    def __init__(self, token: str, header: str = "Authorization", scheme: str | None = "Token",
                 on_secret: Callable[[str], None] = _noop):
        if not token:
            raise ValueError("the connection has no token (password field is empty)")
        on_secret(token)
        self._value = f"{scheme} {token}" if scheme else token
        self._header = header

    def headers(self, client: HttpClient) -> dict[str, str]:
        return {self._header: self._value}


@dataclass
class TokenGrant:
    access_token: str
    expires_in: float
    token_type: str = "Bearer"
    refresh_token: str | None = None


Grant = Callable[[HttpClient, "TokenGrant | None"], TokenGrant]


class TokenAuth(Auth):
    """A bearer token from ``grant`` (which may use the previous grant's refresh token), cached and
    renewed ``early`` seconds before expiry, or at once after a 401."""

    can_refresh = True

    def __init__(self, grant: Grant, *, header: str = "Authorization", early: float = 60.0,
                 on_secret: Callable[[str], None] = _noop, clock: Callable[[], float] = time.time):
        self._grant_fn = grant
        self._header = header
        self._early = early
        self._on_secret = on_secret
        self._clock = clock
        self._grant: TokenGrant | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.grants = 0

    def _renew(self, client: HttpClient) -> None:
        grant = self._grant_fn(client, self._grant)
        self._on_secret(grant.access_token)
        if grant.refresh_token:
            self._on_secret(grant.refresh_token)
        self._grant = grant
        # Refresh early, but never treat a token as expired the moment it is issued.
        self._expires_at = self._clock() + max(float(grant.expires_in) - self._early,
                                               float(grant.expires_in) / 2)
        self.grants += 1

    def headers(self, client: HttpClient) -> dict[str, str]:
        with self._lock:
            if self._grant is None or self._clock() >= self._expires_at:
                self._renew(client)
            g = self._grant
        assert g is not None
        return {self._header: _header_value(g)}

    def expire(self, sent: Mapping[str, str]) -> None:
        """Renew at the next ``headers()``, unless another thread has renewed since ``sent`` was taken."""
        with self._lock:
            g = self._grant
            if g is not None and sent.get(self._header) == _header_value(g):
                self._expires_at = 0.0


def _header_value(grant: TokenGrant) -> str:
    """The auth header's value for a grant: ``<type> <token>`` (``Bearer`` when the grant names none)."""
    return f"{grant.token_type or 'Bearer'} {grant.access_token}"
