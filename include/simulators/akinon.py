"""Akinon OMS simulator (seed 004, providers.md section 5): invoices, orders, stock locations.

Endpoints, all behind ``Authorization: Token <key>`` (401 ``{"detail": ...}`` when it is missing or
wrong; ``Bearer`` is accepted too, as in the newer OMS OpenAPI pages):

* ``GET /api/v1/oms/invoices/`` and ``/api/v1/oms/invoices/{id}/`` [SEED]: records shaped exactly like the
  seed's example (money and rates as strings, nested ``invoiceitem_set``, ``channel``, ``address``,
  ``order``).
* ``GET /api/v1/oms/orders/`` and ``/api/v1/oms/orders/{id}/`` [DOC order-services; detail INF]: the
  orders behind the invoices, with ``state`` (``translations``), ``commands`` and ``orderitem_set[]``
  whose ``product`` objects carry the product (``productimage_set``, ``sku``, ``barcode`` ...).
* ``GET /api/v1/oms/stocklocations/list-simple/`` [DOC stock-location-services]: the stores and the
  warehouse. "list-simple" (added "for business intelligence purposes") returns the whole list as a
  bare JSON array, unpaged and unfiltered [INF: the docs mark the sender-address list as paged, not
  this one].

The two lists are Django REST Framework page-number pages (``count``/``next``/``previous``/``results``,
``?limit=&page=``, 1-based, ``next`` null on the last page, 404 ``{"detail": "Invalid page."}`` past it)
with django-filter ``modified_date__gte``/``modified_date__lt`` (400 ``{field: [message]}`` on a bad
date). Faults: ``drift`` (each later page starts one record early: the previous page's last record
repeats) and ``duplicates`` (each later page also repeats the previous page's last record) on both
paged lists; ``duplicates`` repeats one stock location in the unpaged list, where ``drift`` has no pages
to act on.

Serving: each invoice's (and order's) JSON is rendered once per (world config, ``as_of``) and kept as
bytes in a memo bounded by ``MEMO_BYTES`` (LRU); pages are assembled from those bytes, so a second client
reading the same records costs a lookup per record, with exactly the bytes a fresh rendering gives. The
memo is off when ``as_of`` is the real clock (a new "now" every second would only fill it).

The business: e-commerce invoices in TRY. Most orders are prepaid at checkout (``order.payment_type``
set); about a quarter are on open account (``payment_type`` null) and get paid days later, some never.
Invoices move ``waiting`` -> ``approved``; about 5% are ``cancelled``. Every change moves
``modified_date``. Each invoice has exactly one order (``order.id`` = the invoice id) that is listed once
its invoice exists; each invoice line is one order item (``invoiceitem_set[].order_item`` = the
order item's ``id``) with the same tax, discount and net amount; the item's ``price`` is the unit price
and ``quantity`` [INF: a merged order item, see Omnitron's "Splitting a Merged Order Item"] the count,
so ``net_amount = price * quantity - discount_amount``. Products come from a catalogue of
``N_PRODUCTS`` per seed; prices vary by order (price lists, promotions). Stock locations have a time
axis too: one store opens in February 2025, another closes (``is_active`` false) in March 2025.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from simulators.jsonbody import MEMO_BYTES, BytesMemo, dumps, json_response, pinned_world, records, with_array
from simulators.world import EPOCH, UTC, QueryCache, World, customer_name, money, rng, ts_in_day

PROVIDER = "akinon"
BASE_PER_DAY = 20
MAX_LAG = dt.timedelta(days=75)  # no event happens later than this after an invoice is created
CURRENCY = "TRY"
TAX_RATES = ("1.00", "10.00", "20.00")
CHANNELS = {1: "web", 2: "mobile-app", 3: "marketplace"}
STATES = {"waiting": ("Waiting", "100", 25), "approved": ("Approved", "400", 26),
          "cancelled": ("Cancelled", "450", 27)}
STATE_TR = {"waiting": "Bekliyor", "approved": "Onaylandı", "cancelled": "İptal Edildi"}
N_PRODUCTS = 60
CREDENTIALS = {"token": "akinon-sim-token"}  # demo credential of the simulator only


def _iso(ts: dt.datetime) -> str:
    """``2025-02-03T11:10:50.570000Z``: UTC, always six fractional digits (DRF's format)."""
    return ts.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"  # cut "+00:00"


def customer_id(n: int) -> str:
    """Akinon's id of business customer ``n`` (``order.customer``; the dbt ``customer_xref`` uses it)."""
    return str(n)


@dataclass(frozen=True)
class InvoiceFacts:
    """The whole life of one invoice, from which its state on any day follows."""

    id: int
    day: dt.date
    index: int
    created: dt.datetime
    customer: int
    channel: int
    payment_type: str | None
    approved_at: dt.datetime
    cancelled_at: dt.datetime | None
    paid_at: dt.datetime | None  # when an open-account invoice is paid (None: never)
    n_lines: int

    def state(self, as_of: dt.datetime) -> dict[str, Any]:
        status, modified = "waiting", self.created
        if self.approved_at <= as_of:
            status, modified = "approved", self.approved_at
        payment_type = self.payment_type
        if self.paid_at is not None and self.paid_at <= as_of and (
                self.cancelled_at is None or self.paid_at < self.cancelled_at):
            payment_type = "funds_transfer"
            modified = max(modified, self.paid_at)
        if self.cancelled_at is not None and self.cancelled_at <= as_of:
            status, modified = "cancelled", max(modified, self.cancelled_at)
        return {"status": status, "modified": modified, "payment_type": payment_type}


def invoice_id(day_index: int, i: int) -> int:
    return day_index * 10_000 + i + 1


def facts(world: World, day: dt.date, i: int) -> InvoiceFacts:
    r = rng(world.seed, PROVIDER, "invoice", day.isoformat(), i)
    created = ts_in_day(r, day)
    customer = world.customer(r)
    channel = r.randint(1, 3)
    payment_type = r.choices(["credit_card", "funds_transfer", None], [0.6, 0.15, 0.25])[0]
    approved_at = created + dt.timedelta(hours=r.randint(2, 72), seconds=r.randint(0, 3599))
    cancelled_at = created + dt.timedelta(hours=r.randint(1, 240)) if r.random() < 0.05 else None
    paid_at = None
    if payment_type is None and r.random() < 0.7:
        paid_at = created + dt.timedelta(days=r.randint(3, 70), seconds=r.randint(0, 86399))
    n_lines = world.config.lines_per_invoice or r.randint(1, 4)
    return InvoiceFacts(invoice_id(world.day_index(day), i), day, i, created, customer, channel,
                        payment_type, approved_at, cancelled_at, paid_at, n_lines)


def facts_by_id(world: World, id_: int) -> InvoiceFacts | None:
    """The invoice (and order) with this id, if it exists as of ``world.as_of``."""
    day_index, i = divmod(id_ - 1, 10_000)
    if day_index < 0:
        return None
    day = EPOCH + dt.timedelta(days=day_index)
    if i >= world.daily_count(PROVIDER, day, BASE_PER_DAY):
        return None
    f = facts(world, day, i)
    return None if f.created > world.as_of else f


@dataclass(frozen=True)
class LineFacts:
    """One sold line: an invoice item and the order item it bills (same id, same amounts)."""

    id: int
    created: dt.datetime
    unit: Decimal
    quantity: int
    tax_rate: Decimal
    tax: Decimal
    discount_rate: Decimal
    discount: Decimal

    @property
    def total(self) -> Decimal:
        return self.unit * self.quantity

    @property
    def net(self) -> Decimal:
        return self.total - self.discount


def line_facts(world: World, f: InvoiceFacts) -> list[LineFacts]:
    r = rng(world.seed, PROVIDER, "lines", f.id)
    out = []
    for j in range(f.n_lines):
        unit = money(Decimal(r.randint(4990, 249900)) / 100)
        qty = r.randint(1, 3)
        total = unit * qty
        rate = Decimal(r.choice(TAX_RATES))
        tax = money(total - total / (1 + rate / 100))
        discount_rate = Decimal("10.00") if r.random() < 0.2 else Decimal("0.00")
        discount = money(total * discount_rate / 100)
        created = f.created + dt.timedelta(microseconds=5000 + j)
        out.append(LineFacts(f.id * 10 + j + 1, created, unit, qty, rate, tax, discount_rate, discount))
    return out


def lines(world: World, f: InvoiceFacts) -> list[dict[str, Any]]:
    """The invoice's ``invoiceitem_set`` exactly as the seed shapes it."""
    return [{
        "id": ln.id,
        "created_date": (created := _iso(ln.created)),
        "modified_date": created,
        "tax_rate": str(ln.tax_rate),
        "tax_amount": str(ln.tax),
        "discount_rate": str(ln.discount_rate),
        "discount_amount": str(ln.discount),
        "interest_rate": "0.00",
        "interest_amount": None,
        "total_amount": str(ln.total),
        "net_amount": str(ln.net),
        "order_item": ln.id,
    } for ln in line_facts(world, f)]


def invoice_total(items: list[dict[str, Any]]) -> Decimal:
    """What the customer owes: the sum of the lines' net amounts (after discounts, tax included)."""
    return sum((Decimal(i["net_amount"]) for i in items), Decimal("0.00"))


# --- products -----------------------------------------------------------------------------------------
_COLOURS = ("Siyah", "Beyaz", "Lacivert", "Kırmızı", "Yeşil", "Gri", "Bej", "Mavi")
_ITEMS = ("Tişört", "Gömlek", "Kazak", "Pantolon", "Ceket", "Elbise", "Etek", "Mont", "Şort", "Hırka")
_SIZES = ("XS", "S", "M", "L", "XL")


def _ean13(body: str) -> str:
    s = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - s % 10) % 10)


@lru_cache(maxsize=4096)
def product(seed: int, k: int) -> dict[str, Any]:
    """Catalogue product ``k`` (0-based) of a seed, as OMS embeds it in ``orderitem_set[].product``.

    Three sizes of one model share a ``base_code``; barcodes are EAN-13 with Türkiye's 869 prefix."""
    model = k // 3
    r = rng(seed, PROVIDER, "product-model", model)
    colour, item = r.choice(_COLOURS), r.choice(_ITEMS)
    size = _SIZES[(k + r.randint(0, 2)) % len(_SIZES)]
    pid = 1000 + k
    sku = f"{pid}{size}"
    touched = dt.datetime(2024, 11, 1, 8, tzinfo=UTC) + dt.timedelta(hours=7 * k, microseconds=k)
    return {
        "id": pid,
        "productimage_set": [{
            "id": 9000 + 2 * k, "image": f"https://cdn.example.akinon.net/products/{sku}/1.jpg",
            "order": 0, "created_date": _iso(touched), "modified_date": _iso(touched),
        }],
        "omnitron_id": 50_000 + k,
        "name": f"{colour} {item} {size}",
        "base_code": f"M{model + 100:04d}",
        "sku": sku,
        "barcode": _ean13(f"869{seed % 1000:03d}{pid:06d}"),
        "attributes": {"color": colour, "size": size, "integration_ProductType": item},
        "attributes_kwargs": {},
        "extra_attributes": {},
        "remote_modified_date": _iso(touched),
    }


def _item_product(world: World, item_id: int) -> tuple[int, Decimal]:
    """Which catalogue product an order item sold, and its strike-through list-price markup."""
    r = rng(world.seed, PROVIDER, "orderitem", item_id)
    return r.randrange(N_PRODUCTS), Decimal(r.choice(("1.00", "1.00", "1.25", "1.50")))


# --- rendering ----------------------------------------------------------------------------------------
def _state(status: str, *, translations: bool) -> dict[str, Any]:
    name, enum_value, state_id = STATES[status]
    st = {"id": state_id, "next_states": [], "previous_states": [],
          "created_date": "2019-03-20T13:20:08.201990Z", "modified_date": "2019-03-20T13:20:08.202020Z",
          "name": name, "config": {}, "enum_class": "OrderStatus", "enum_value": enum_value,
          "content_type": 17}
    if translations:
        st["translations"] = {"en-us": {"name": name}, "tr-tr": {"name": STATE_TR[status]}}
    return st


def _order_header(f: InvoiceFacts, st: dict[str, Any]) -> dict[str, Any]:
    """The order fields shared by ``invoice.order`` and the orders list (seed 004's ``order`` object)."""
    placed = _iso(f.created - dt.timedelta(minutes=5))
    return {
        "id": f.id,
        "payment_type": st["payment_type"],
        "created_date": placed,
        "modified_date": _iso(st["modified"]),
        "omnitron_id": 30_000 + f.id,
        "number": f"3783{f.id:014d}",
        "date_placed": placed[:19] + "Z",  # whole seconds
        "channel": f.channel,
        "customer": f.customer,
        "shipping_address": f.customer * 10 + 2,
        "billing_address": f.customer * 10 + 1,
    }


@lru_cache(maxsize=8)
def _channel_created(channel: int) -> str:
    return _iso(dt.datetime(2024, 6, 1, 9, 0, channel, tzinfo=UTC))


def render(world: World, f: InvoiceFacts, as_of: dt.datetime) -> dict[str, Any]:
    """One invoice as ``GET /api/v1/oms/invoices/`` returns it (the seed's example, key for key)."""
    st = f.state(as_of)
    cust_name = customer_name(f.customer).split(" ", 1)
    channel_created = _channel_created(f.channel)
    header = _order_header(f, st)
    return {
        "id": f.id,
        "invoice_type": "purchased",
        "status": st["status"],
        "channel": {
            "id": f.channel, "channel_type": "channel", "created_date": channel_created,
            "modified_date": channel_created, "omnitron_id": f.channel + 100,
            "name": CHANNELS[f.channel], "configuration": {}, "is_active": True,
        },
        "address": {
            "pk": f.customer * 10 + 1, "email": f"customer{f.customer:03d}@example.com",
            "phone_number": f"0500{f.customer:07d}", "first_name": cust_name[0], "last_name": cust_name[1],
            "country": 1, "city": 34, "line": f"Street {f.customer}", "title": "billing", "township": 2,
            "district": None, "postcode": "", "notes": None, "company_name": None, "tax_office": None,
            "tax_no": None, "e_bill_taxpayer": False, "is_corporate": False,
        },
        "invoiceitem_set": lines(world, f),
        "order": {"id": header.pop("id"), "state": _state(st["status"], translations=False), **header},
        "package_number": f"PCK_{f.id}_1",
        "created_date": _iso(f.created),
        "modified_date": header["modified_date"],
        "number": f"{9_000_000_000 + f.id}",
    }


def order_items(world: World, f: InvoiceFacts, status: str) -> list[dict[str, Any]]:
    """The order's ``orderitem_set``: one item per invoice line, same id and amounts."""
    out = []
    for ln in line_facts(world, f):
        k, markup = _item_product(world, ln.id)
        prod = product(world.seed, k)
        out.append({
            "id": ln.id,
            "state": _state(status, translations=True),
            "product": prod,
            "omnitron_id": 40_000_000 + ln.id,
            "quantity": ln.quantity,
            "net_amount": str(ln.net),
            "price": str(ln.unit),
            "price_currency": "try",
            "retail_price": str(money(ln.unit * markup)),
            "tax_rate": str(ln.tax_rate),
            "tax_amount": str(ln.tax),
            "discount_amount": str(ln.discount),
            "without_net_amount": str(ln.net - ln.tax),  # [INF] the net amount without tax
            "installment_interest_amount": "0.00",
            "attributes": {},
            "image": prod["productimage_set"][0]["image"],
            "created_date": (created := _iso(ln.created)),
            "modified_date": created,
        })
    return out


def render_order(world: World, f: InvoiceFacts, as_of: dt.datetime) -> dict[str, Any]:
    """One order as ``GET /api/v1/oms/orders/`` returns it (providers.md 5.3)."""
    st = f.state(as_of)
    header = _order_header(f, st)
    return {
        "id": header.pop("id"),
        "state": _state(st["status"], translations=True),
        "commands": [] if st["status"] == "cancelled" else [{"name": "cancel_order", "is_active": True}],
        "orderitem_set": order_items(world, f, st["status"]),
        **header,
    }


# --- stock locations ----------------------------------------------------------------------------------
#: (id, name, type, erp_code, opened, closed): the warehouse and the stores (the same for every seed).
STOCK_LOCATIONS = (
    (501, "Merkez Depo Hadımköy", "warehouse", "WH-001", dt.datetime(2024, 5, 2, 9, 15, tzinfo=UTC), None),
    (521, "İstanbul Kadıköy Mağaza", "store", "ST-021", dt.datetime(2024, 5, 20, 10, 0, tzinfo=UTC), None),
    (522, "İstanbul Nişantaşı Mağaza", "store", "ST-022", dt.datetime(2024, 6, 3, 10, 0, tzinfo=UTC), None),
    (523, "Ankara Kızılay Mağaza", "store", "ST-023", dt.datetime(2024, 7, 15, 10, 0, tzinfo=UTC),
     dt.datetime(2025, 3, 3, 18, 30, tzinfo=UTC)),
    (524, "İzmir Alsancak Mağaza", "store", "ST-024", dt.datetime(2024, 9, 9, 10, 0, tzinfo=UTC), None),
    (525, "Bursa Nilüfer Mağaza", "store", "ST-025", dt.datetime(2025, 2, 3, 10, 0, tzinfo=UTC), None),
)


def stock_locations(as_of: dt.datetime) -> list[dict[str, Any]]:
    """The stock locations that exist as of ``as_of``, with ``is_active``/``modified_date`` at that time."""
    out = []
    for sid, name, kind, erp, opened, closed in STOCK_LOCATIONS:
        if opened > as_of:
            continue
        is_active = closed is None or closed > as_of
        modified = opened + dt.timedelta(microseconds=sid) if is_active else closed
        warehouse = kind == "warehouse"
        out.append({
            "id": sid, "created_date": _iso(opened), "modified_date": _iso(modified),
            "omnitron_id": 700 + sid, "name": name, "stock_location_type": kind, "fax_number": None,
            "erp_code": erp, "address": 5000 + sid, "is_fulfillment_center": warehouse,
            "is_pickup_location": not warehouse, "is_delivery_location": True,
            "is_fast_delivery_available": not warehouse, "is_return_available": True,
            "is_active": is_active, "priority": 1 if warehouse else 10 + sid,
        })
    return out


# --- ground truth -------------------------------------------------------------------------------------
def iter_facts(world: World, start: dt.datetime | None, end: dt.datetime | None):
    """Every invoice (= order) that exists as of ``world.as_of`` and whose modified_date is in [start, end)."""
    as_of = world.as_of
    first = (start - MAX_LAG).date() if start else dt.date.min
    last = min(end, as_of) if end else as_of
    for day in world.days(first, last.date() + dt.timedelta(days=1)):
        for i in range(world.daily_count(PROVIDER, day, BASE_PER_DAY)):
            f = facts(world, day, i)
            if f.created > as_of:
                continue
            mod = f.state(as_of)["modified"]
            if (start is None or mod >= start) and (end is None or mod < end):
                yield f


def truth(world: World, start: dt.datetime | None = None, end: dt.datetime | None = None) -> dict[str, Any]:
    """Ground truth of a full extraction of [start, end): counts, exact money, receivables.

    ``counts``/``sums`` are per stream; ``stock_locations`` is a full sweep (no filter): its count is
    every location that exists as of ``world.as_of`` whatever the window. ``receivables`` is keyed by
    (customer key, currency): ``invoiced`` = non-cancelled totals, ``paid`` = the total of invoices
    whose order has a ``payment_type`` and is not cancelled, ``open`` = invoiced - paid.
    ``products`` gives, per product id, its catalogue fields and the ``price``/``retail_price`` of its
    latest order item (latest order ``modified_date``, then highest order item id).
    The flat keys (``invoices``, ``invoice_lines``, ``total_amount``, ``by_status``, ``by_customer``)
    are kept for the tests written against them.
    """
    zero = Decimal("0.00")
    as_of = world.as_of
    receivables: dict[tuple[str, str], dict[str, Decimal]] = {}
    out: dict[str, Any] = {"provider": PROVIDER, "invoices": 0, "invoice_lines": 0,
                           "total_amount": zero, "by_status": {}, "by_customer": receivables}
    latest: dict[int, tuple[tuple[dt.datetime, int], Decimal, Decimal]] = {}
    customers: set[int] = set()
    for f in iter_facts(world, start, end):
        lf = line_facts(world, f)
        total = sum((ln.net for ln in lf), zero)
        st = f.state(as_of)
        paid = total if st["payment_type"] is not None and st["status"] != "cancelled" else zero
        open_ = zero if st["status"] == "cancelled" else total - paid
        out["invoices"] += 1
        out["invoice_lines"] += len(lf)
        out["total_amount"] += total
        s = out["by_status"].setdefault(st["status"], {"invoices": 0, "total_amount": zero})
        s["invoices"] += 1
        s["total_amount"] += total
        c = receivables.setdefault((f"C{f.customer:03d}", CURRENCY), {"invoiced": zero, "paid": zero,
                                                                       "open": zero})
        if st["status"] != "cancelled":
            c["invoiced"] += total
        c["paid"] += paid
        c["open"] += open_
        customers.add(f.customer)
        for ln in lf:
            k, markup = _item_product(world, ln.id)
            rank = (st["modified"], ln.id)
            if k not in latest or rank > latest[k][0]:
                latest[k] = (rank, ln.unit, money(ln.unit * markup))
    locations = stock_locations(as_of)
    out["counts"] = {"invoices": out["invoices"], "orders": out["invoices"], "stock_locations": len(locations)}
    out["sums"] = {"invoices": {"total_amount": out["total_amount"]},
                   "orders": {"total_amount": out["total_amount"]}}
    out["receivables"] = receivables
    out["order_items"] = out["invoice_lines"]
    out["order_customers"] = sorted(customer_id(n) for n in customers)
    out["stock_location_ids"] = sorted(str(loc["id"]) for loc in locations)
    out["products"] = {}
    for k in sorted(latest):
        p = product(world.seed, k)
        out["products"][str(p["id"])] = {"sku": p["sku"], "name": p["name"], "barcode": p["barcode"],
                                         "price": latest[k][1], "retail_price": latest[k][2]}
    return out


# --- HTTP ---------------------------------------------------------------------------------------------
def _parse_dt(value: str | None, name: str) -> dt.datetime | None:
    if value is None or value == "":
        return None
    text = value.replace("Z", "+00:00").replace(" ", "+")
    try:
        ts = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name}: Enter a valid date/time.") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)




def make_app(state, *, memo_bytes: int | None = None) -> FastAPI:
    """The Akinon OMS app; ``state`` is the shared SimState (world, faults, credentials).

    ``memo_bytes``: bound of the rendered-record memo (default ``MEMO_BYTES``; 0 turns it off)."""
    app = FastAPI(title="Akinon OMS simulator")
    cache = QueryCache()
    memo = BytesMemo(MEMO_BYTES if memo_bytes is None else memo_bytes)
    app.state.record_memo = memo  # read by tests and benchmarks

    def snapshot() -> tuple[World, tuple, dt.datetime, BytesMemo | None]:
        """This request's world (``pinned_world``: as_of pinned, so that a config changed mid-request
        cannot render a record under another config's key). Returns (world, config key, as_of, the memo
        to serve records from or None)."""
        world, request_memo = pinned_world(state.world, memo)
        c = world.config
        key = (c.seed, c.scale, c.lines_per_invoice, tuple(sorted(c.per_day.items())))
        return world, key, c.as_of, request_memo

    def serve(world: World, config_key: tuple, as_of: dt.datetime, request_memo: BytesMemo | None,
              render_one: Callable[[World, InvoiceFacts, dt.datetime], dict],
              chunk: list[tuple[dt.date, int]]) -> list[bytes]:
        """The JSON bytes of the records (day, index) of ``chunk``: ``dumps(render_one(...))`` each.

        A record's bytes depend on the render function, ``seed`` and ``lines_per_invoice`` (its facts and
        lines), ``as_of`` (its state) and (day, index) only; the key also carries ``scale`` and
        ``per_day`` (which records exist, not how one looks). Faults pick records, never change one."""
        return records(request_memo, [(render_one, config_key, as_of, d, i) for d, i in chunk],
                       lambda k: dumps(render_one(world, facts(world, k[3], k[4]), as_of)))

    def auth_error(request: Request) -> JSONResponse | None:
        header = request.headers.get("authorization")
        if not header:
            return JSONResponse({"detail": "Authentication credentials were not provided."}, 401)
        scheme, _, key = header.partition(" ")
        if scheme not in ("Token", "Bearer") or key != state.credentials[PROVIDER]["token"]:
            return JSONResponse({"detail": "Invalid token."}, 401)
        return None

    def drf_list(request: Request, render_one: Callable[[World, InvoiceFacts, dt.datetime], dict]) -> Response:
        """One DRF page of the invoices (= orders) matching the request's modified_date filter."""
        if (err := auth_error(request)) is not None:
            return err
        q = request.query_params
        try:
            gte = _parse_dt(q.get("modified_date__gte"), "modified_date__gte")
            lt = _parse_dt(q.get("modified_date__lt"), "modified_date__lt")
        except ValueError as exc:
            field, _, msg = str(exc).partition(": ")
            return JSONResponse({field: [msg]}, 400)
        try:
            limit = max(1, min(int(q.get("limit", 20)), 1000))
            page = int(q.get("page", 1))
        except ValueError:
            return JSONResponse({"detail": "Invalid page."}, 404)
        world, config_key, as_of, request_memo = snapshot()
        faults = state.faults[PROVIDER]
        key = (*config_key, as_of, gte, lt)
        keys = cache.get(key, lambda: [(f.day, f.index) for f in iter_facts(world, gte, lt)])
        count = len(keys)
        pages = max(1, math.ceil(count / limit))
        if page < 1 or page > pages:
            return JSONResponse({"detail": "Invalid page."}, 404)
        lo = (page - 1) * limit
        if faults.drift and page > 1:
            lo -= 1  # a record was inserted ahead of this page while the client paged: one repeats
        chunk = keys[lo: lo + limit]
        if faults.duplicates and page > 1 and chunk:
            chunk = [keys[lo - 1], *chunk] if lo >= 1 else chunk  # the previous page's last record again
        results = serve(world, config_key, as_of, request_memo, render_one, chunk)
        base = str(request.url.remove_query_params(["page"]))
        sep = "&" if "?" in base else "?"
        nxt = f"{base}{sep}page={page + 1}" if page < pages else None
        prev = None if page == 1 else (f"{base}{sep}page={page - 1}" if page > 2 else base)
        # = json_response({"count": count, "next": nxt, "previous": prev, "results": [records]})
        return Response(with_array({"count": count, "next": nxt, "previous": prev}, "results", results),
                        media_type="application/json")

    def detail(request: Request, id_: int, render_one: Callable[[World, InvoiceFacts, dt.datetime], dict]
               ) -> Response:
        if (err := auth_error(request)) is not None:
            return err
        world, config_key, as_of, request_memo = snapshot()
        f = facts_by_id(world, id_)
        if f is None:
            return JSONResponse({"detail": "Not found."}, 404)
        body = serve(world, config_key, as_of, request_memo, render_one, [(f.day, f.index)])[0]
        return Response(body, media_type="application/json")  # = json_response(render_one(world, f, as_of))

    @app.get("/api/v1/oms/invoices/")
    def list_invoices(request: Request):
        return drf_list(request, render)

    @app.get("/api/v1/oms/invoices/{invoice_id}/")
    def get_invoice(invoice_id: int, request: Request):
        return detail(request, invoice_id, render)

    @app.get("/api/v1/oms/orders/")
    def list_orders(request: Request):
        return drf_list(request, render_order)

    @app.get("/api/v1/oms/orders/{order_id}/")
    def get_order(order_id: int, request: Request):
        return detail(request, order_id, render_order)

    @app.get("/api/v1/oms/stocklocations/list-simple/")
    def list_stock_locations(request: Request):
        if (err := auth_error(request)) is not None:
            return err
        rows = stock_locations(state.world.as_of)
        if state.faults[PROVIDER].duplicates and rows:
            rows.append(rows[len(rows) // 2])  # a fan-out in the source query: one location twice
        return json_response(rows)

    return app
