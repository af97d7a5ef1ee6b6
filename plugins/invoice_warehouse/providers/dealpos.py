"""DealPOS API 3.1.0 (seed 000, providers.md section 1): invoices with lines and payments, returns,
payments received, outlets, customers, products.

Auth: OAuth2 client credentials. ``POST /api/v3/Token/OAuth2`` with the JSON body
``{"client_id", "client_secret"}`` (the connection's login and password) returns a bearer token with
``expires_in``; the engine caches it, renews it before it expires and once after a 401 (section 1.1).
Rate limit: 50 requests per 180 s across all endpoints (section 1.2); the engine's limiter keeps under
it, and a ``RateLimit-Remaining: 0`` answer pauses until ``RateLimit-Reset``.
Reads are documented as GET with a JSON body "also available as HTTP POST"; GET bodies are unreliable,
so windowed reads are POSTs with ``From``/``To`` (inclusive local dates ``yyyy-mm-dd``) and
``PageNumber``/``PageSize`` in the body. Bare arrays end with a short page. Money is JSON numbers
(IDR; parsed as Decimal). Datetimes have no offset: tenant local time, Asia/Jakarta (WIB) [INF], and
``0001-01-01T00:00:00`` means null. Outlets, customers and products have no change filter: full refresh.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from invoice_warehouse.engine.auth import TokenAuth, TokenGrant
from invoice_warehouse.engine.hook import ProviderHook
from invoice_warehouse.engine.http import (
    AuthError,
    HttpClient,
)
from invoice_warehouse.engine.paginate import PageNumberPaginator
from invoice_warehouse.engine.schema import Field, Schema
from invoice_warehouse.engine.spec import ConnInfo, ProviderSpec, Stream, Window

TZ = "Asia/Jakarta"
TOKEN_PATH = "/api/v3/Token/OAuth2"
PAGE_SIZE = 500  # undocumented maximum; public loaders use 100..1000 (section 1.3)
DEFAULT_EXPIRES_IN = 3600  # public clients' fallback when expires_in is missing


def _local_dates(start: dt.datetime, end: dt.datetime) -> dict[str, str]:
    """[start, end) as DealPOS's inclusive local dates: start.date() .. (end - 1 day).date()."""
    return {"From": start.date().isoformat(), "To": (end - dt.timedelta(days=1)).date().isoformat()}


def _body_window(start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    return {"json": _local_dates(start, end)}


def _pages(page_size: int = PAGE_SIZE, in_body: bool = True) -> Callable[[], PageNumberPaginator]:
    return lambda: PageNumberPaginator(page_param="PageNumber", size_param="PageSize", page_size=page_size,
                                       in_body=in_body)


def _grant(conn: ConnInfo) -> Callable[[HttpClient, TokenGrant | None], TokenGrant]:
    """Client-credentials grant (``POST Token/OAuth2`` with a JSON body of GUIDs), retried like any call."""

    def grant(client: HttpClient, _previous: TokenGrant | None) -> TokenGrant:
        if not conn.login or not conn.password:
            raise AuthError(f"connection {conn.conn_id!r} needs a Client ID (login) and a Client Secret "
                            "(password)")
        data, _ = client.request_json(
            "POST", TOKEN_PATH, json_body={"client_id": conn.login, "client_secret": conn.password},
            authenticate=False,
            refused_hint="check the Client ID and Client Secret stored in that Airflow connection")
        if not isinstance(data, dict) or not data.get("access_token"):
            raise AuthError(f"connection {conn.conn_id!r}: POST {TOKEN_PATH} answered without an access_token")
        return TokenGrant(access_token=str(data["access_token"]),
                          expires_in=float(data.get("expires_in") or DEFAULT_EXPIRES_IN),
                          token_type=str(data.get("token_type") or "Bearer"))

    return grant


def _auth(conn: ConnInfo, on_secret):
    return TokenAuth(_grant(conn), on_secret=on_secret)


def _payments_by_outlet(body: Any) -> list:
    # Payment/Invoice answers [{"Outlet": "...", "Payments": [...]}, ...]: one record per payment.
    if not isinstance(body, list):
        raise ValueError(f"expected a list of outlets, got {type(body).__name__}")
    return [{**p, "Outlet": group.get("Outlet")} for group in body for p in (group.get("Payments") or [])]


def _local_ts(name: str, **kw: Any) -> Field:
    return Field(name, "timestamp", tz=TZ, **kw)


MONEY = "decimal(38,6)"

INVOICES = Stream(
    name="invoices",
    path="/api/v3/Invoice/MultipleOutlet/WithVariant",
    method="POST",
    # Status defaults to Active: voided invoices only come with "Any" (section 1.4).
    json={"Status": "Any"},
    # [CODE] the IncludePayments header adds Payments[] (instalments, refunds) to every invoice.
    headers={"IncludePayments": "true"},
    records=None,
    primary_key=("ID",),
    paginator=_pages(),
    window=Window(apply=_body_window),
    description="Invoices by local sell date (Status Any), with lines (Variants) and payments (Payments).",
    schema=Schema.of(
        Field("ID", required=True),
        "Outlet", "Number", "ReferenceNumber", "CustomerID", "Customer",
        Field("Date", "date", required=True),
        Field("Due", "date"),
        Field("Amount", MONEY, required=True),
        Field("ReturnAmount", MONEY),
        "Payment", "Status", "Fulfillment", "Tag",
        _local_ts("Created"),
        Field("Variants", "json"),
        Field("Payments", "json"),
    ),
)

RETURNS = Stream(
    name="returns",
    path="/api/v3/Invoice/Return",
    method="POST",  # public ETL uses POST Invoice/Return; the doc's "Invoice/p" looks like a slip
    json={},
    records=None,
    primary_key=("ID",),
    paginator=_pages(),
    window=Window(apply=_body_window),
    description="Sales returns by local return date; ReferenceNumber/InvoiceID name the original invoice.",
    schema=Schema.of(
        Field("ID", required=True),
        "Outlet", "Number", "ReferenceNumber", "InvoiceID", "CustomerID", "Customer",
        Field("Date", "date", required=True),
        Field("Amount", MONEY, required=True),
        "Status", "Tag",
        _local_ts("Created"),
        Field("Variants", "json"),
    ),
)

PAYMENTS_RECEIVED = Stream(
    name="payments_received",
    # POST Payment/Invoice would *add* a payment; its read twin for POST is Payment/Invoice/p [DOC].
    path="/api/v3/Payment/Invoice/p",
    method="POST",
    json={},
    records=_payments_by_outlet,
    primary_key=("ID",),
    # Pagination is not documented for this endpoint: chunk by month-sized windows instead [INF].
    window=Window(apply=_body_window, max_days=31),
    description="Payments received by local payment date, grouped by outlet (refunds are negative).",
    schema=Schema.of(
        Field("ID", required=True),
        "Outlet", "InvoiceID", "Invoice", "Customer",
        _local_ts("Date", required=True),
        Field("Amount", MONEY, required=True),
        "Method", "Code", "Note",
    ),
)

OUTLETS = Stream(
    name="outlets",
    path="/api/v3/Outlet",  # no Suspended filter: closed outlets still issued invoices
    records=None,
    primary_key=("ID",),
    description="Every outlet (full refresh).",
    schema=Schema.of(Field("ID", required=True), "Code", "Name", Field("Suspended", "bool"), "Address", "City",
                     "Phone", "Email", _local_ts("Created")),
)

CUSTOMERS = Stream(
    name="customers",
    path="/api/v3/Customer",
    records=None,
    primary_key=("ID",),
    paginator=_pages(in_body=False),  # a plain GET: PageNumber/PageSize in the query string
    description="Every customer (full refresh).",
    schema=Schema.of(Field("ID", required=True), "Code", "Name", "FirstName", "LastName", "Email", "Mobile",
                     "Phone", Field("BirthDate", "date"), _local_ts("JoinDate"), Field("ExpiredDate", "date"),
                     "NationalIDNumber", "Address", "City"),
)

PRODUCTS = Stream(
    name="products",
    path="/api/v3/Product",
    records="DataArray",
    primary_key=("ID",),
    paginator=_pages(in_body=False),
    description="Every product with its variants (full refresh).",
    schema=Schema.of(Field("ID", required=True), "Code", "Name", "Category", Field("Released", "bool"),
                     Field("Discontinued", "bool"), "ThumbnailUrl", "ImageUrl", _local_ts("Created"),
                     Field("Variants", "json")),
)

SPEC = ProviderSpec(
    name="dealpos",
    title="DealPOS",
    conn_type="dealpos",
    # Invoices and returns are filtered by sell date, but payments, returns and voids reach older
    # invoices later: each run re-reads the two weeks before its window (one wider request).
    lookback_days={"invoices": 14, "returns": 14},
    auth=_auth,
    streams=(INVOICES, RETURNS, PAYMENTS_RECEIVED, OUTLETS, CUSTOMERS, PRODUCTS),
    rate_limit=(50, 180),
    max_concurrency=2,  # pages of bare arrays are read one after another anyway
    test_path="/api/v3/Outlet",
    source_timezone=TZ,
    relabeling={"host": "Base URL", "login": "Client ID", "password": "Client Secret"},
    placeholders={"host": "https://subdomain.dealpos.net", "login": "client_id (GUID)",
                  "password": "client_secret (GUID)"},
    hidden_fields=("schema", "port", "extra"),
    doc=__doc__ or "",
)


class DealposHook(ProviderHook):
    """Hook for DealPOS: host = base URL (paths are /api/v3/...), login = Client ID, password = Client
    Secret."""

    spec = SPEC
    conn_type = SPEC.conn_type
    default_conn_name = SPEC.default_conn_id
    hook_name = SPEC.title
