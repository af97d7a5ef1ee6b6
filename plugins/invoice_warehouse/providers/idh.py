"""IDH API Manager (seed 001, providers.md section 2): orders, invoices, payments, stores, returns,
products of a distributor on IDH's B2B ordering platform (IDR, Indonesian text, WIB local time).

Auth: a static "token atau API key" issued by IDH (no token endpoint; "generally lifetime"). The seed
never shows the header; ``Authorization: Bearer <token>`` is this project's one assumption (the 401
body ``{"error": "invalid token - error parse token"}`` suggests a JWT). The connection's extra
``auth_scheme`` changes the scheme (empty: the raw token) if IDH confirms otherwise.

Two backends, two paginators (seed response headers):

* idhServer (orders, stores, returns, products): ``paginator.current_page``/``total_page``, ``page``
  1-based -> :class:`PageNumberPaginator` with ``total_pages_path`` (remaining pages known up front).
* beegoServer (invoices, payment history): ``paginator.HasNext``; the page parameter is ``p`` (the seed's
  ``PageLinkNext`` keeps ``page=1`` and moves ``p``) -> :class:`HasNextPaginator` sending ``p`` and ``page``
  and checking ``paginator.Page``.

Business errors come back as HTTP 200 with ``success: false`` (seed: "Data dengan nomer tagihan ...
tidak ditemukan"): :func:`body_check` turns them into a non-retried error with IDH's message.

Windows (provider-local dates, Asia/Jakarta): a run for [start, end) asks for the local dates
start.date() .. (end - 1 day).date(). Orders: ``date=DDMMYYYY-DDMMYYYY``, at most 30 days a request
(longer is a business error), so the window is sliced (``max_days=30``). Returns: the same format; the
seed documents no limit, sliced the same way to be safe [INF]. Invoices and payment history:
``unixtime_range=<s>-<s>`` (epoch seconds, inclusive) from local midnight of the first date to the last
second of the last date. Stores are a full list every run (no filter exists).

Fan-outs: orders -> ``/po/:po/ext`` (the recommended detail: confirmed quantities and totals; the list
``total`` can differ, seed: 957600 vs 855591.66, so ext values win downstream) and ``/po/:po`` (the only
place with ``product_id``), each kept under its own key; invoices -> ``/invoice/detail/:id`` (adds
``list_payments``); stores -> ``/store/id/:id`` (answers under ``results``). Payment history runs once per
``payment_type`` (``digital`` leaves out cash paid through the app; ``manually`` has it).

Products: the list endpoint shows at most 20 items and needs a 3-letter search, so it cannot enumerate
the catalogue. The products stream fetches ``/v1/product/id/:id`` for every product id seen in the same
window's orders (plain detail ``order_detail[].product_id``) and returns (``items[].product_id``): the
products the warehouse's lines refer to. It must run after those two streams (``Stream.ids_from``).

IDH offers no line items on invoices: an invoice lists ``order_ids``; its lines are those orders' ext
products (dbt: ``stg_idh__order_lines`` + ``stg_idh__invoice_orders`` -> ``stg_idh__invoice_lines``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from invoice_warehouse.engine.auth import StaticTokenAuth
from invoice_warehouse.engine.hook import ProviderHook
from invoice_warehouse.engine.paginate import HasNextPaginator, PageNumberPaginator
from invoice_warehouse.engine.schema import Field, Schema
from invoice_warehouse.engine.spec import ConnField, ConnInfo, Detail, IdSource, ProviderSpec, Stream, Window

TZ = "Asia/Jakarta"
JAKARTA = ZoneInfo(TZ)
MONEY = "decimal(38,6)"
DDMMYYYY = "%d-%m-%Y"  # IDH's calendar dates: "16-06-2022"
MAX_ORDER_DAYS = 30  # seed: "rentang waktu maksimum 30 hari"
BEEGO_PAGE_SIZE = 100  # `limit` (default 24)
RETURN_PAGE_SIZE = 100


def local_dates(start: dt.datetime, end: dt.datetime) -> tuple[dt.date, dt.date]:
    """The provider-local dates asked for [start, end): start.date() .. (end - 1 day).date()."""
    return start.date(), (end - dt.timedelta(days=1)).date()


def _date_param(start: dt.datetime, end: dt.datetime) -> dict:
    first, last = local_dates(start, end)
    return {"params": {"date": f"{first:%d%m%Y}-{last:%d%m%Y}"}}


def _unixtime_range(start: dt.datetime, end: dt.datetime) -> dict:
    first, last = local_dates(start, end)
    lo = dt.datetime.combine(first, dt.time(0), JAKARTA)
    hi = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), JAKARTA)
    return {"params": {"unixtime_range": f"{int(lo.timestamp())}-{int(hi.timestamp()) - 1}"}}


def _auth(conn: ConnInfo, on_secret):
    # [INF] Bearer: the seed never names the header (providers.md 2.1); extra.auth_scheme overrides it.
    scheme = conn.extra.get("auth_scheme", "Bearer")
    return StaticTokenAuth(conn.password or "", scheme=scheme or None, on_secret=on_secret)


def body_check(body: Any) -> tuple[str, bool] | None:
    """IDH answers business errors with HTTP 200 and ``success: false``; never worth a retry."""
    if isinstance(body, dict) and body.get("success") is False:
        message = body.get("error") or body.get("message") or "success: false without a message"
        return f"IDH said success=false: {message}", False
    return None


def _idh_pages(size: int | None = None):
    """idhServer lists: ``page`` (+ ``limit`` where the endpoint has one), total from the first page."""
    return lambda: PageNumberPaginator(page_param="page", size_param="limit" if size else None, page_size=size,
                                       total_pages_path="paginator.total_page",
                                       current_page_path="paginator.current_page")


def _beego_pages():
    return lambda: HasNextPaginator(page_size=BEEGO_PAGE_SIZE)


def _json_list(value: Any) -> list:
    return json.loads(value) if isinstance(value, str) else list(value or [])


def product_ids_in_order_detail(detail: Any) -> Iterable[str]:
    """``detail.order_detail[].product_id`` of a landed order (the plain detail, kept as JSON)."""
    obj = json.loads(detail) if isinstance(detail, str) else detail
    return [d.get("product_id") for d in (obj or {}).get("order_detail") or []]


def product_ids_in_return_items(items: Any) -> Iterable[str]:
    return [i.get("product_id") for i in _json_list(items)]


ORDERS = Stream(
    name="orders",
    path="/v1/order",
    primary_key=("po",),
    paginator=_idh_pages(),
    window=Window(apply=_date_param, max_days=MAX_ORDER_DAYS),
    detail=(Detail("/v1/order/po/{po}/ext", records="object", into="ext"),
            Detail("/v1/order/po/{po}", records="object", into="detail")),
    description="Purchase orders of stores; ext detail (confirmed values, items[].products[]) and plain "
                "detail (order_detail[] with product_id) kept as JSON under ext/detail.",
    schema=Schema.of(
        Field("po", required=True),
        Field("date", "timestamp", tz=TZ, required=True),  # ISO with +07:00
        "status", "store_id", "store_code", "store_name", "customer_code", "distributor_id", "order_note",
        "pickup_point",
        Field("principal_name", "json"),
        Field("total", MONEY),  # the list's total: as ordered, can differ from ext_total
        Field("ext_total", MONEY, path="ext.total", required=True),
        Field("order_id", path="ext.order_id"),
        Field("created_on_date", "date", path="ext.created_on_date", fmt=DDMMYYYY),
        Field("order_status", path="ext.order_status"),
        Field("status_confirmedorder", path="ext.status_confirmedorder"),
        Field("cancel_reason", path="ext.cancel_reason"),
        Field("delivery_status", path="ext.delivery_status"),
        Field("ext", "json", required=True),
        Field("detail", "json", required=True),
    ),
)

INVOICES = Stream(
    name="invoices",
    path="/v1/invoice",
    primary_key=("id",),
    paginator=_beego_pages(),
    window=Window(apply=_unixtime_range),
    detail=Detail("/v1/invoice/detail/{id}", records="object"),
    description="Invoices (tagihan) created in the window, with list_payments from the detail.",
    schema=Schema.of(
        Field("id", required=True),
        "invoice_number",
        Field("created_on", "date", fmt=DDMMYYYY, required=True),
        Field("due_date", "date", fmt=DDMMYYYY),
        "status", "store_id", "store_name", "salesman_id", "salesman_name", "pickup_id", "pickup_name",
        "created_by", "file", "file_retur", "retur_dms_id", "order_ids_formatted",
        Field("subtotal", MONEY, required=True),
        Field("total_retur", MONEY),
        Field("is_import", "bool"), Field("is_paid", "bool"), Field("is_pay_manually", "bool"),
        Field("is_select_payment", "bool"),
        "list_payment",  # absent until a payment method is chosen (optional key, seed)
        Field("order_ids", "json"),
        Field("list_payments", "json"),  # detail only; absent when nothing was paid
    ),
)

PAYMENTS = Stream(
    name="payments",
    path="/v1/invoice/payment/history",
    primary_key=("id",),
    paginator=_beego_pages(),
    window=Window(apply=_unixtime_range),
    # "digital" excludes cash paid through the app; "manually" has it (seed): read both.
    variants=({"params": {"payment_type": "digital"}}, {"params": {"payment_type": "manually"}}),
    description="Payment history (digital and manual), one row per payment or expired attempt.",
    schema=Schema.of(
        Field("id", required=True),
        "invoice_id",
        Field("payment_date", "date", fmt=DDMMYYYY, required=True),
        Field("total_payment", MONEY, required=True),
        Field("outstanding_balance", MONEY),
        "paymentchannel_name", "status_translate", "note", "store_id", "store_name",
        Field("is_correct_manually", "bool"), Field("is_disbursed", "bool"),
    ),
)

CUSTOMERS = Stream(
    name="customers",
    path="/v1/store",
    primary_key=("store_id",),
    paginator=_idh_pages(),
    detail=Detail("/v1/store/id/{store_id}", records="results"),  # seed: detail under "results"
    description="Stores (pelanggan): the list has name and id only, so every store's detail is read.",
    schema=Schema.of(
        Field("store_id", required=True),
        "name",
        Field("address", "json"), Field("dmsinfo", "json"), Field("storetype", "json"),
        Field("emails", "json"), Field("phones", "json"),  # null when unknown
    ),
)

RETURNS = Stream(
    name="returns",
    path="/v1/returnexchange",
    primary_key=("id",),
    params={"include_items": "true", "is_open_only": "false"},
    paginator=_idh_pages(RETURN_PAGE_SIZE),
    window=Window(apply=_date_param, max_days=MAX_ORDER_DAYS),
    description="Return/exchange requests (retur) created in the window, with items[] and statuses[].",
    schema=Schema.of(
        Field("id", required=True),  # an int in the API: a string key here
        Field("created_on_milli", "epoch_ms", required=True),  # epoch ms, 0 = none
        Field("confirmed_on_milli", "epoch_ms"), Field("processed_on_milli", "epoch_ms"),
        Field("canceled_on_milli", "epoch_ms"),
        Field("is_canceled", "bool"), Field("is_confirmed", "bool"), Field("is_processed", "bool"),
        "store_id", "store_name", "store_email", "store_phone", "customer_code", "distributor_id",
        "distributor_name", "principal_id", "principal_name", "salesman_id", "salesman_code", "salesman_name",
        "admin_note", "created_by", "confirmed_by", "processed_by", "processed_by_name", "canceled_by",
        Field("items", "json"),
    ),
)

PRODUCTS = Stream(
    name="products",
    path="/v1/product/id/{id}",
    primary_key=("product_id",),
    records="object",
    ids_from=(IdSource("orders", "detail", product_ids_in_order_detail),
              IdSource("returns", "items", product_ids_in_return_items)),
    description="Product detail for every product id seen in the window's orders and returns (the list "
                "endpoint shows at most 20 items and cannot enumerate the catalogue).",
    schema=Schema.of(
        Field("product_id", required=True),
        "name", "internal_code", "measure_unit", "principal", "description",
        Field("price", MONEY),
    ),
)

SPEC = ProviderSpec(
    name="idh",
    title="IDH API Manager",
    conn_type="idh",
    # Orders, returns and invoices are filtered by creation date; their status and payments change
    # later (instalments, confirmations): each run re-reads the days before its window.
    lookback_days={"invoices": 14, "orders": 7, "returns": 7},
    auth=_auth,
    # products last: its ids come from orders and returns landed for the same window
    streams=(ORDERS, INVOICES, PAYMENTS, CUSTOMERS, RETURNS, PRODUCTS),
    body_check=body_check,
    # No rate limit is documented (seed); four requests in flight is the conservative throttle [INF].
    max_concurrency=4,
    test_path="/v1/ping",
    source_timezone=TZ,
    relabeling={"host": "Base URL", "password": "API token"},
    placeholders={"host": "https://api.manager.idh.id", "password": "token issued by IDH (dev@idh.id)"},
    hidden_fields=("schema", "port", "login", "extra"),
    extra_fields=(ConnField("auth_scheme", "Authorization scheme",
                            description="'Bearer' (default, an assumption: IDH does not document the "
                                        "header) or empty to send the raw token"),),
    doc=__doc__ or "",
)


class IdhHook(ProviderHook):
    """Hook for IDH API Manager: host = base URL (https://api.manager.idh.id), password = API token."""

    spec = SPEC
    conn_type = SPEC.conn_type
    default_conn_name = SPEC.default_conn_id
    hook_name = SPEC.title
