"""Shopwave / merchantstack (seed 002, providers.md section 3): supplier invoices to merchant stores,
consumer baskets, transactions and orders, stores, supplier stores and products. Currency GBP.

Auth: OAuth2 with a stored refresh token. The merchant's one-time consent (authorization-code flow in
a browser) yields a refresh token that is kept in the Airflow connection; every run exchanges it at
``POST <token_url>`` (``grant_type=refresh_token``, client id/secret) for a Bearer access token. An
expired access token answers 908 (HTTP 401): the engine refreshes once and retries. Every call sends
``x-accept-version: 2.0`` (913 without it).

No pagination ("list endpoints return full result sets"), filters in request headers, collections as
maps keyed by id, so most streams are full sweeps that the loader de-duplicates by key. The resource
GETs have no date filter: baskets and transactions are windowed through ``GET /report`` with an SWQL
``query`` header on ``completeDate``; the answer's ``keys`` + array-only ``data`` are zipped back
into records. Money arrives in minor units (strings like ``"1600.0"`` and integer pence) and lands
as sent; staging divides by 100. A 200 can still carry ``api.message.error`` (partial success): the
body check fails the request then, and retries the throttling id 919.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any

from invoice_warehouse.engine.auth import TokenAuth, TokenGrant
from invoice_warehouse.engine.hook import ProviderHook
from invoice_warehouse.engine.http import (
    AuthError,
    HttpClient,
)
from invoice_warehouse.engine.paginate import SinglePaginator, dig
from invoice_warehouse.engine.schema import Field, Schema
from invoice_warehouse.engine.spec import ConnField, ConnInfo, ProviderSpec, Stream, Window

UTC = dt.timezone.utc
MONEY = "decimal(38,6)"  # raw money stays in the API's minor units (pence); staging converts exactly

#: api.message error ids worth retrying: 919 "Cannot handle too many request" (914 in older public
#: code), 899 "Unknown Error" (HTTP 500). Anything else in api.message.error fails the request.
RETRYABLE_API_ERRORS = frozenset({"919", "914", "899"})


# --- auth --------------------------------------------------------------------------------------------
def refresh_token_grant(conn: ConnInfo, token_url: str) -> Callable[[HttpClient, TokenGrant | None], TokenGrant]:
    """The OAuth2 refresh-token grant (RFC 6749 section 6) as a TokenAuth grant function.

    Transient failures of the token endpoint (connection errors, 429/5xx, broken bodies) are retried
    with the client's retry policy; a refusal (bad client or refresh token) fails at once with a message
    naming the connection and never a secret.
    """

    def grant(client: HttpClient, previous: TokenGrant | None) -> TokenGrant:
        # A rotated refresh token from the previous grant wins over the stored one (within a run).
        refresh = (previous.refresh_token if previous and previous.refresh_token
                   else conn.extra.get("refresh_token"))
        form = {"grant_type": "refresh_token", "client_id": conn.login, "client_secret": conn.password,
                "refresh_token": refresh}
        body, _ = client.request_json(
            "POST", token_url, form=form, authenticate=False,
            refused_hint="check the Client ID, Client Secret and refresh token stored in that Airflow "
                         "connection (a revoked refresh token needs the merchant's consent again)")
        if not isinstance(body, Mapping) or not body.get("access_token"):
            raise AuthError(f"connection {conn.conn_id!r}: the Shopwave token endpoint answered without an "
                            "access_token")
        return TokenGrant(access_token=str(body["access_token"]),
                          expires_in=float(body.get("expires_in") or 3600),
                          token_type=str(body.get("token_type") or "Bearer"),
                          refresh_token=body.get("refresh_token") or refresh)

    return grant


def token_url(conn: ConnInfo) -> str:
    """extra.token_url, else <host>/oauth/token (production: https://secure.merchantstack.com/oauth/token)."""
    if conn.extra.get("token_url"):
        return str(conn.extra["token_url"])
    host = conn.host if "://" in conn.host else f"https://{conn.host}"
    return host.rstrip("/") + "/oauth/token"


def _auth(conn: ConnInfo, on_secret) -> TokenAuth:
    missing = [label for label, value in (("Client ID (login)", conn.login), ("Client Secret (password)",
                                          conn.password), ("refresh_token (extra)", conn.extra.get("refresh_token")))
               if not value]
    if missing:
        raise ValueError(f"connection {conn.conn_id!r} is missing {', '.join(missing)}")
    return TokenAuth(refresh_token_grant(conn, token_url(conn)), on_secret=on_secret)


# --- responses ---------------------------------------------------------------------------------------
def body_check(body: Any) -> tuple[str, bool] | None:
    """``api.message.error`` can be present on a 200 (partial success) [DOC errors.html]: such a body is
    not trusted. Retryable when every error is transient (919 throttling, 899 unknown)."""
    errors = dig(body, "api.message.error")
    if not errors:
        return None
    entries = list(errors.values()) if isinstance(errors, Mapping) else list(errors) if isinstance(errors, list) \
        else [errors]
    parts, ids = [], []
    for e in entries:
        if isinstance(e, Mapping):
            ids.append(str(e.get("id")))
            parts.append(f"{e.get('id')} {e.get('title')}: {e.get('details')}")
        else:
            ids.append(str(e))
            parts.append(str(e))
    return "api.message.error " + "; ".join(parts), all(i in RETRYABLE_API_ERRORS for i in ids)


def collection(key: str) -> Callable[[Any], list]:
    """Records of an id-keyed map (``{"invoices": {"123": {...}}}``), flattened; the map key fills a
    missing ``id``. An empty collection may come as ``[]`` or ``{}``."""

    def records(body: Any) -> list:
        found = dig(body, key)
        if found is None or found == []:
            return []
        if isinstance(found, list):
            return found
        if not isinstance(found, Mapping):
            raise ValueError(f"{key!r} is a {type(found).__name__}, not an id-keyed map")
        return [{"id": k, **v} if isinstance(v, Mapping) and "id" not in v else v for k, v in found.items()]

    return records


def report_rows(entity: str) -> Callable[[Any], list]:
    """Records of an SWQL report: ``report["0"]`` = ``keys`` + array-only ``data`` rows, zipped back;
    ``"<Entity>.<field>"`` keys lose the entity prefix (dots would read as nested paths)."""
    prefix = f"{entity}."

    def records(body: Any) -> list:
        part = dig(body, "report.0")
        if part is None:
            raise ValueError("no report['0'] in the answer")
        keys = [k[len(prefix):] if k.startswith(prefix) else k for k in part.get("keys") or []]
        out = []
        for row in part.get("data") or []:
            if not isinstance(row, list) or len(row) != len(keys):
                raise ValueError(f"a report row has {len(row) if isinstance(row, list) else 'no'} values for "
                                 f"{len(keys)} keys")
            out.append(dict(zip(keys, row, strict=True)))
        return out

    return records


def swql_window(entity: str) -> Window:
    """[start, end) on ``<entity>.completeDate`` through the SWQL ``query`` header.

    The documented example pairs ``>`` and ``<`` (and stops at 23:00:00, losing the last hour): we send
    ``>=``/``<`` so consecutive windows neither overlap nor leave gaps. SWQL compares at whole seconds
    in UTC ('YYYY-MM-DD HH:MM:SS')."""

    def fmt(ts: dt.datetime) -> str:
        return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")

    def apply(start: dt.datetime, end: dt.datetime) -> dict:
        query = {"0": {"FROM": entity, "WHERE": {"AND": [f"{entity}.completeDate >= '{fmt(start)}'",
                                                         f"{entity}.completeDate < '{fmt(end)}'"]}}}
        return {"headers": {"query": json.dumps(query, separators=(",", ":"))}}

    return Window(apply=apply)


# --- streams -----------------------------------------------------------------------------------------
def _ts(name: str, required: bool = False) -> Field:
    return Field(name, "timestamp", required=required)


INVOICES = Stream(
    name="invoices",
    path="/invoice",
    primary_key=("id",),
    records=collection("invoices"),
    paginator=SinglePaginator,
    description="Supplier invoices to the merchant's stores, with invoiceItems (id-keyed map, JSON). Full sweep.",
    skip_unchanged_records=True,  # a full sweep: only what changed since an earlier window is landed
    schema=Schema.of(
        Field("id", required=True),
        "supplierId", "supplierName", "storeId", "supplierStoreId", "reference", "note",
        _ts("addedDate"),
        _ts("completeDate"),  # "Supplier Invoice Date" [SEED]
        Field("totalQuantity", "int"),
        Field("totalPrice", MONEY),
        Field("totalVat", MONEY),
        Field("totalIncVat", MONEY, required=True),
        Field("accountId", "json"),
        Field("invoiceItems", "json", required=True),
    ),
)

ORDERS = Stream(
    name="orders",
    path="/order",
    primary_key=("id",),
    records=collection("orders"),
    description="Orders generated by completed baskets (collection/delivery). Full sweep.",
    skip_unchanged_records=True,  # a full sweep: only what changed since an earlier window is landed
    schema=Schema.of(
        Field("id", required=True),
        "basketId", "storeId", "consumerId", "reference", "type", "note",
        _ts("addedDate"), _ts("completeDate"),
        Field("completed", "bool"),
        Field("totalPrice", MONEY),
    ),
)

BASKETS = Stream(
    name="baskets",
    path="/report",
    primary_key=("id",),
    records=report_rows("Basket"),
    window=swql_window("Basket"),
    description="Completed consumer baskets (sales) by completeDate, from the SWQL report.",
    schema=Schema.of(
        Field("id", required=True),
        "storeId", "consumerId", "employeeId", "name", "note",
        _ts("addedDate"), _ts("completeDate", required=True),
        Field("totalQuantity", "int"),
        Field("totalPrice", MONEY),
    ),
)

TRANSACTIONS = Stream(
    name="transactions",
    path="/report",
    primary_key=("id",),
    records=report_rows("Transaction"),
    window=swql_window("Transaction"),
    description="Basket transactions (consumer payments and refunds, integer pence) by completeDate.",
    schema=Schema.of(
        Field("id", required=True),
        "basketId", "storeId", "type",
        Field("amount", MONEY, required=True),
        Field("tip", MONEY),
        _ts("completeDate", required=True),
        Field("Note"),  # capitalised in the docs [DOC transaction/POST]
    ),
)

STORES = Stream(
    name="stores",
    path="/store",
    primary_key=("id",),
    records=collection("stores"),
    description="The merchant's stores (the invoiced party of supplier invoices). Full sweep.",
    schema=Schema.of(
        Field("id", required=True),
        "merchantId", "name", "addressLine1", "addressLine2", "city", "postcode", "timezoneId", "email",
        "phone",
        Field("lat", "decimal(12,8)"), Field("lng", "decimal(12,8)"),
        Field("sandbox", "bool"),
    ),
)

SUPPLIER_STORES = Stream(
    name="supplier_stores",
    path="/supplier/store",
    primary_key=("id",),
    records=collection("supplierStores"),
    description="Supplier stores (the issuing party of supplier invoices). Full sweep.",
    schema=Schema.of(
        Field("id", required=True),
        "supplierId", "supplierName", "name", "addressLine1", "city", "postcode", "email", "phone",
    ),
)

PRODUCTS = Stream(
    name="products",
    path="/product",
    primary_key=("id",),
    records=collection("products"),
    description="Products with their price instances (id-keyed map, JSON; prices in pence). Full sweep.",
    schema=Schema.of(
        Field("id", required=True),
        "name", "barcode", "details", "categoryId",
        _ts("addedDate"),
        Field("instances", "json"),
    ),
)

SPEC = ProviderSpec(
    name="shopwave",
    title="Shopwave (merchantstack)",
    conn_type="shopwave",
    auth=_auth,
    streams=(INVOICES, ORDERS, BASKETS, TRANSACTIONS, STORES, SUPPLIER_STORES, PRODUCTS),
    default_headers={"x-accept-version": "2.0"},  # "always send x-accept-version: 2.0" [DOC guide]
    body_check=body_check,
    rate_limit=None,  # "does not currently enforce published rate limits" [DOC rate-limits.html]
    max_concurrency=2,
    test_path="/status",
    source_timezone="UTC",
    relabeling={"host": "API base URL", "login": "Client ID", "password": "Client Secret"},
    placeholders={"host": "https://api.merchantstack.com", "login": "application identifier",
                  "password": "application secret"},
    hidden_fields=("schema", "port", "extra"),
    extra_fields=(
        ConnField("refresh_token", "Refresh token", secret=True,
                  description="From the merchant's one-time OAuth consent (authorization-code exchange)"),
        ConnField("token_url", "Token URL",
                  description="Default: <API base URL>/oauth/token; production: "
                              "https://secure.merchantstack.com/oauth/token"),
    ),
    doc=__doc__ or "",
)


class ShopwaveHook(ProviderHook):
    """Hook for Shopwave: host = API base URL, login = Client ID, password = Client Secret,
    extra ``refresh_token`` (secret) and optional ``token_url``."""

    spec = SPEC
    conn_type = SPEC.conn_type
    default_conn_name = SPEC.default_conn_id
    hook_name = SPEC.title
