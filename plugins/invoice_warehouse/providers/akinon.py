"""Akinon OMS (seed 004, providers.md section 5): invoices, orders, stock locations.

Auth: ``Authorization: Token <key>`` (the connection's password). Pagination: Django REST Framework
(``count``/``next``/``results``, ``?limit=&page=``, 1-based, ``next`` null on the last page).
Incremental: ``modified_date__gte``/``modified_date__lt`` (django-filter lookups; [INF] for these
endpoints). Money and rates are strings (``"399.00"``); datetimes are ISO UTC with ``Z``.

Streams: ``invoices`` and ``orders`` (one order per invoice; its ``orderitem_set`` embeds the products,
which OMS has no list of) by modified-date window; ``stock_locations`` (the stores and warehouses,
``list-simple``: one unpaged JSON array) as a full sweep on every run. Customers exist in OMS only as
ids (``order.customer``). Akinon OMS offers no payments and no returns list (coverage table in the
README): payment state is ``order.payment_type``; refunds live in Omnitron.
"""

from __future__ import annotations

import datetime as dt

from invoice_warehouse.engine.auth import StaticTokenAuth
from invoice_warehouse.engine.hook import ProviderHook
from invoice_warehouse.engine.paginate import NextLinkPaginator
from invoice_warehouse.engine.schema import Field, Schema
from invoice_warehouse.engine.spec import ConnField, ConnInfo, ProviderSpec, Stream, Window

PAGE_SIZE = 100


def _iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _modified_window(start: dt.datetime, end: dt.datetime) -> dict:
    return {"params": {"modified_date__gte": _iso(start), "modified_date__lt": _iso(end)}}


def _auth(conn: ConnInfo, on_secret):
    # The seed documents "Token <key>"; newer OMS OpenAPI pages show "Bearer <JWT>": extra.auth_scheme.
    return StaticTokenAuth(conn.password or "", scheme=conn.extra.get("auth_scheme") or "Token",
                           on_secret=on_secret)


def _drf(page_size: int = PAGE_SIZE):
    return lambda: NextLinkPaginator(page_size=page_size)


INVOICES = Stream(
    name="invoices",
    path="/api/v1/oms/invoices/",
    primary_key=("id",),
    paginator=_drf(),
    window=Window(apply=_modified_window),
    description="Invoices with their lines (invoiceitem_set), channel, billing address and order.",
    schema=Schema.of(
        Field("id", required=True),
        "number", "invoice_type", "status", "package_number",
        Field("created_date", "timestamp"),
        Field("modified_date", "timestamp", required=True),
        Field("channel_id", path="channel.id"),
        Field("channel_name", path="channel.name"),
        Field("order_id", path="order.id"),
        Field("order_number", path="order.number"),
        Field("order_customer_id", path="order.customer"),
        Field("order_payment_type", path="order.payment_type"),
        Field("order_state", path="order.state.enum_value"),
        Field("order_date_placed", "timestamp", path="order.date_placed"),
        Field("channel", "json"),
        Field("address", "json"),
        Field("order", "json"),
        Field("invoiceitem_set", "json", required=True),
    ),
)

ORDERS = Stream(
    name="orders",
    path="/api/v1/oms/orders/",
    primary_key=("id",),
    paginator=_drf(),
    window=Window(apply=_modified_window),
    description="Orders with their items (orderitem_set, each embedding its product), state and commands.",
    schema=Schema.of(
        Field("id", required=True),
        "number",
        Field("created_date", "timestamp"),
        Field("modified_date", "timestamp", required=True),
        Field("date_placed", "timestamp"),
        "payment_type",
        Field("customer_id", path="customer"),
        Field("channel_id", path="channel"),
        Field("shipping_address_id", path="shipping_address"),
        Field("billing_address_id", path="billing_address"),
        "omnitron_id",
        Field("state_enum_value", path="state.enum_value"),
        Field("state_name", path="state.name"),
        Field("state", "json"),
        Field("commands", "json"),
        Field("orderitem_set", "json", required=True),
    ),
)

STOCK_LOCATIONS = Stream(
    name="stock_locations",
    path="/api/v1/oms/stocklocations/list-simple/",
    primary_key=("id",),
    records=None,  # a bare JSON array, unpaged ("list-simple", for business intelligence)
    description="Stock locations (stores, warehouses): the whole list on every run (no filter exists).",
    schema=Schema.of(
        Field("id", required=True),
        "name", "stock_location_type", "erp_code", "omnitron_id",
        Field("address_id", path="address"),
        "fax_number",
        Field("is_fulfillment_center", "bool"),
        Field("is_pickup_location", "bool"),
        Field("is_delivery_location", "bool"),
        Field("is_fast_delivery_available", "bool"),
        Field("is_return_available", "bool"),
        Field("is_active", "bool"),
        Field("priority", "int"),
        Field("created_date", "timestamp"),
        Field("modified_date", "timestamp"),
    ),
)

SPEC = ProviderSpec(
    name="akinon",
    title="Akinon OMS",
    conn_type="akinon",
    auth=_auth,
    streams=(INVOICES, ORDERS, STOCK_LOCATIONS),
    max_concurrency=8,
    test_path="/api/v1/oms/invoices/",
    test_params={"limit": 1},
    source_timezone="UTC",
    relabeling={"host": "OMS base URL", "password": "API token"},
    placeholders={"host": "https://oms.example.akinon.net", "password": "Token key from /api/v1/auth/login/"},
    hidden_fields=("schema", "port", "login", "extra"),
    extra_fields=(ConnField("auth_scheme", "Authorization scheme",
                            description="'Token' (documented, default) or 'Bearer' for JWT deployments"),),
)


class AkinonHook(ProviderHook):
    """Hook for Akinon OMS: host = base URL, password = API token."""

    spec = SPEC
    conn_type = SPEC.conn_type
    default_conn_name = SPEC.default_conn_id
    hook_name = SPEC.title
