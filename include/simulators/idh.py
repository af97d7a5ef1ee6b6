"""IDH API Manager simulator (seed 001, providers.md section 2): orders, stores, products, returns,
invoices and payment history of a distributor selling FMCG goods to stores, in IDR.

Two backends, as the seed's response headers show, with their own envelopes and paginators:

* ``Server: idhServer`` (orders, stores, products, returns): ``{"success", "paginator": {"current_page",
  "total_page", "data_count"}, "results"}``; 1-based ``page`` (``page=0`` is page 1, as in the seed's
  return example); single objects under ``object`` except store detail, which answers under ``results``.
  ``GET /v1/order?date=DDMMYYYY-DDMMYYYY`` spans at most 30 days (end - start <= 30: the seed's own
  example ``01052024-31052024`` is allowed); a longer range is a business error. Order list pages hold 20
  rows and store pages 10 (seed: 41 stores -> 5 pages); the product list shows at most 20 items, 10 a
  page, and ``name``/``internal_code`` need 3 letters or more.
* ``Server: beegoServer:2.0.0`` (invoices, payment history): ``{"data_count", "paginator": {"HasNext",
  "Page", "PageLinkNext" (with ``p=``), ...}, "results", "success"}``; the page parameter is beego's
  ``p`` (``page`` is echoed in the links but ignored), ``limit`` defaults to 24 (at most 100 here [INF]);
  ``unixtime_range=<s>-<s>`` (epoch seconds, both ends inclusive) on the invoice's creation time and on
  the payment time; ``payment_type=digital|manually`` splits the payment history.

Errors: 401 ``{"error": "invalid token - error parse token", "success": false}`` unless
``Authorization: Bearer <token>`` carries the token. The header is not documented anywhere (seed,
providers.md 2.1); Bearer is this project's one assumption, made in the hook too. Business errors
(range too long, unknown id, a filter shorter than 3 letters) are HTTP 200 with ``success: false``.
``/v1/ping`` also needs the token here [INF], so a connection test checks the credential.
The ``token_ttl`` fault makes the static token stop working that many seconds after its first use
(IDH "re-issues a token" in the seed's words): 401 ``token is expired`` [INF]. ``drift``/``duplicates``
shift or repeat a row across pages of every paged list.

Quirks kept from the seed: Indonesian statuses, ``DD-MM-YYYY`` dates, ISO ``+07:00`` on the order list,
epoch milliseconds with 0 for "none" and integer ids in returns, optional keys that disappear instead of
being null (``list_payment`` on invoices; ``list_payments`` on invoice detail when nothing was paid
[INF]), and an order list ``total`` that differs from the ext detail (see below). Money is sent as JSON
numbers: integers, or 2-decimal values such as ``855591.66`` (a Python float's repr of a 2-decimal amount
is that exact text, which the client parses as a Decimal).

The business (all local times are WIB, Asia/Jakarta, +07:00; "day" below is a local calendar day):

* Stores: the 40 business customers; ``customer_id(n)`` is store ``n``'s IDH id.
* Orders: ``BASE_ORDERS_PER_DAY`` a day, placed 07:00-21:00 by a store, 1-4 products of 1-2 principals.
  About 6% are cancelled and 3% stay open; the rest are confirmed 1-30 h later. A quarter of confirmed
  orders are confirmed at a lower quantity for one product (the distributor is short of stock); the ext
  detail (``/po/:po/ext``, the seed's recommended detail) then carries the confirmed quantities, sub totals
  and total, while the list ``total`` and the plain detail keep what was ordered. Prefer ext values.
* Invoices (tagihan): each store's confirmed orders of one day are billed together on one invoice 2-5
  days later (``subtotal`` = the sum of those orders' ext totals; ``order_ids``); a fifth of invoices carry
  a DMS return credit (``total_retur``, ``retur_dms_id``) that reduces what the store owes. IDH invoices
  have no lines: lines are the covered orders' ext products.
* Payments: digital (KoinWorks, QRIS; some QRIS attempts expire: ``Waktu pembayaran habis``, total 0) or
  manual (Cash On Delivery, Transfer Manual), in one go or in 2-3 instalments days or weeks later; about
  a tenth of invoices are never paid and some instalment plans stop half way. Invoice status:
  ``Belum Dibayar`` (nothing paid), ``Cicil`` (part paid), ``Lunas`` (settled, all digital),
  ``Dilunasi Secara Manual`` (settled with a manual payment). The detail's ``list_payments`` lists the
  successful payments, newest first (``Pembayaran ke-N``).
* Returns/exchanges (retur): ``BASE_RETURNS_PER_DAY`` requests a day, confirmed 1-4 days later (items
  approved, partly approved or rejected) and picked up 1-3 days after that; about 12% are cancelled.
  They are not linked to invoices by the API (an invoice's ``retur_dms_id`` is the distributor's DMS
  number); the money effect on receivables is the invoice's ``total_retur``.

Receivables rule (truth ``receivables``, reproduced by the dbt marts from ``stg_idh__invoices``): per
store and IDR, over the invoices created in the window, ``invoiced`` = sum of ``subtotal`` (IDH has no
cancelled or void invoice state), ``paid`` = sum of the invoice detail's ``list_payments[].total`` (the
successful payments up to ``as_of``; staging ``amount_paid_reported``), ``open`` = invoiced - paid -
``total_retur`` (staging ``credit_amount``).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from simulators.jsonbody import json_response
from simulators.world import EPOCH, UTC, QueryCache, World, WorldConfig, customer_name, money, rng, ts_in_day

PROVIDER = "idh"
CURRENCY = "IDR"
CREDENTIALS = {"token": "idh-sim-token"}  # demo credential of the simulator only
WIB = dt.timezone(dt.timedelta(hours=7), "WIB")  # Asia/Jakarta: +07:00 all year (no DST)

BASE_ORDERS_PER_DAY = 10
BASE_RETURNS_PER_DAY = 2
MAX_ORDER_RANGE_DAYS = 30
ORDER_PAGE_SIZE = 20  # [INF] the seed shows no page size for orders
STORE_PAGE_SIZE = 10  # seed: 41 stores -> 5 pages
PRODUCT_LIST_CAP, PRODUCT_PAGE_SIZE = 20, 10  # seed: "Maksimal ... 20 item ... tiap halaman 10"
BEEGO_DEFAULT_LIMIT, BEEGO_MAX_LIMIT = 24, 100
INVOICE_LAG_DAYS = (2, 5)  # an order day's confirmed orders are billed 2-5 days later
MAX_PAYMENT_LAG = dt.timedelta(days=80)  # no payment happens later than this after its invoice
DISTRIBUTOR = ("319827836", "PT Tulus Maju")
PICKUPS = (("354681623", "TM_PUSAT"), ("417661769", "ODI"), ("", ""))

EXPIRED_NOTE = ("Waktu pembayaran menggunakan QRIS telah habis, silahkan di informasikan kembali kepada "
                "toko tersebut.")


# --- catalogue ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Principal:
    id: str
    name: str
    code: str


PRINCIPALS = (
    Principal("350631573", "PT. AMERTA INDAH OTSUKA", "AIO"),
    Principal("352883089", "PT YHS INDONESIA", "YHS"),
    Principal("352253300", "PT. JOHNSON HOME HYGIENE PRODUCTS", "SCJ"),
    Principal("7020203", "PT. MANDOM INDONESIA, Tbk", "MDM"),
)


@dataclass(frozen=True)
class Product:
    product_id: str
    internal_code: str
    name: str
    measure_unit: str
    price: Decimal
    principal: Principal
    description: str


def _catalogue() -> tuple[Product, ...]:
    # Names, units and prices in the style of the seed's examples; a few internal codes are blank, as in
    # the seed's order detail ("internal_code": "").
    rows = [
        (0, "1100001", "POCARI SWEAT PET 2000mL", "Pcs", "18800"),
        (0, "1100002", "Pocari Sweat PET 500mL", "lusin", "133200"),
        (0, "1100003", "Pocari Sweat SACHET 15Gr", "pak", "12300"),
        (0, "8997035563544", "Pocari Sweat PET 350mL", "lusin", "112800"),
        (0, "1100083", "SOYJOY BAR CRISPY VANILA 25Gr", "pcs", "8278"),
        (0, "1100085", "SOYJOY BAR RAISIN ALMOND 30Gr", "pcs", "8278"),
        (0, "", "Soyjoy STRAWBERRY 30Gr", "pcs", "7950"),
        (0, "1100090", "IONESSENCE PET 250mL", "pcs", "6500"),
        (1, "9", "Yeos Bird Nest CAN 300 mL", "Pcs", "107800"),
        (1, "10", "Yeos Chrysanthemum Tea 250mL", "Pcs", "5200"),
        (1, "11", "Yeos Soy Bean Drink 300mL", "Pcs", "5900"),
        (1, "12", "Yeos Winter Melon Tea 250mL", "Pcs", "5400"),
        (2, "baygon_1", "Baygon Aerosol Silky Lavender 750mL", "pcs", "38447"),
        (2, "baygon_2", "Baygon Liquid Electric 30 Nights", "pcs", "27500"),
        (2, "", "Kiwi Express Shine Neutral 7mL", "pcs", "23200"),
        (2, "glade_1", "Glade Matic Refill Lavender 146gr", "pcs", "46900"),
        (2, "mortein_1", "Mortein Coil Ungu 10 pcs", "kotak", "9600"),
        (2, "vanish_1", "Vanish Pink Liquid 450mL", "botol", "31250"),
        (3, "MDM-2BB", "MIRATONE Conditioning Cream Color BLUE BLACK (2BB)", "kotak", "24500"),
        (3, "MDM-GAT1", "Gatsby Styling Pomade Supreme Hold 75gr", "pcs", "28900"),
        (3, "MDM-PIX1", "Pixy Two Way Cake Natural Beige", "pcs", "41750"),
        (3, "MDM-BRS1", "Bioré Men Double Scrub 100gr", "pcs", "26400"),
        (3, "MDM-LUC1", "Lucido-L Hair Oil 50mL", "botol", "19800"),
        (3, "MDM-MND1", "Mandom Hair Tonic 120mL", "botol", "22150"),
    ]
    out = []
    for k, (p, code, name, unit, price) in enumerate(rows):
        pid = str(320_233_787 + 1_000_117 * k)  # stable 9-digit ids in the seed's range
        desc = "1 karton isi 12pcs" if unit.lower() in ("pcs", "lusin") else f"1 karton isi 24{unit.lower()}"
        out.append(Product(pid, code, name, unit, Decimal(price), PRINCIPALS[p], desc))
    return tuple(out)


CATALOGUE = _catalogue()
PRODUCTS_BY_ID = {p.product_id: p for p in CATALOGUE}
SALESMEN = (("574321338", "SM0001", "cobasalesman"), ("580254477", "SLM_AMRTA002", "salesmanNEw"),
            ("732742203", "S-0123", "Armand"), ("", "", ""))


# --- stores --------------------------------------------------------------------------------------------
def customer_id(n: int) -> str:
    """IDH store id of business customer ``n`` (``stg_idh__invoices.customer_id``)."""
    return str(486_192_000 + 37 * n)


def customer_of(store_id: str) -> int | None:
    """Business customer number of an IDH store id (None when it is not one of ours)."""
    try:
        k, rem = divmod(int(store_id) - 486_192_000, 37)
    except ValueError:
        return None
    return k if rem == 0 and 1 <= k <= World.N_CUSTOMERS else None


def store_code(n: int) -> str:
    return "" if n % 5 == 0 else f"TM-{n:04d}"  # seed: some stores have no DMS code ("")


def salesman(n: int) -> tuple[str, str, str]:
    return SALESMEN[n % len(SALESMEN)]


def render_store_row(n: int) -> dict[str, Any]:
    return {"name": customer_name(n), "store_id": customer_id(n)}


def render_store_detail(n: int) -> dict[str, Any]:
    r = rng("idh-store", n)
    name = customer_name(n)
    regencies = [("32", "JAWA BARAT", "3201", "KABUPATEN BOGOR"), ("31", "DKI JAKARTA", "3171", "KOTA JAKARTA SELATAN"),
                 ("35", "JAWA TIMUR", "3578", "KOTA SURABAYA"), ("52", "NUSA TENGGARA BARAT", "5201",
                                                                  "KABUPATEN LOMBOK BARAT")]
    addresses = []
    for j in range(1 + (n % 3 == 0)):
        prov_id, prov, reg_id, reg = r.choice(regencies)
        addresses.append({
            "address": f"Jl. Pasar {r.randint(1, 99)} No. {r.randint(1, 200)}", "country": "",
            "district": "KECAMATAN " + str(r.randint(1, 30)), "district_id": f"{reg_id}{r.randint(10, 99)}0",
            "is_default": j == 0, "name": name if j == 0 else f"gudang {name.lower()}",
            "phone": f"0812{n:04d}{j:04d}", "province": prov, "province_id": prov_id, "regency": reg,
            "regency_id": reg_id, "village": f"DESA {r.randint(1, 50)}", "village_id": f"{reg_id}0300{j:02d}",
            "zip": f"{r.randint(10000, 99999)}",
        })
    return {
        "address": addresses,
        "dmsinfo": [{"dms": str(505_276_000 + n * 10 + k), "principal": p.id} for k, p in enumerate(PRINCIPALS[:2])],
        "emails": None if n % 2 else [f"toko{n:03d}@example.net"],  # seed: null when unknown
        "name": name,
        "phones": None,
        "storetype": [{"principal": PRINCIPALS[0].name, "type": "Semi Grosir" if n % 4 else "Grosir"}],
    }


# --- orders --------------------------------------------------------------------------------------------
def local_date(ts: dt.datetime) -> dt.date:
    return ts.astimezone(WIB).date()


def _local_ts(r, day: dt.date, start_hour: int, end_hour: int) -> dt.datetime:
    """A WIB wall-clock time on local ``day`` between the hours, as a UTC instant (whole seconds)."""
    wall = ts_in_day(r, day, start_hour, end_hour).replace(microsecond=0, tzinfo=WIB)
    return wall.astimezone(UTC)


@dataclass(frozen=True)
class Line:
    ordered_product_id: str
    product: Product
    qty: int
    confirmed_qty: int
    discount_percent: Decimal
    discount_fixed: Decimal

    def sub_total(self, qty: int) -> Decimal:
        gross = self.product.price * qty
        return max(Decimal("0.00"), money(gross * (100 - self.discount_percent) / 100) - self.discount_fixed)


@dataclass(frozen=True)
class OrderFacts:
    """The whole life of one order (placed, then confirmed or cancelled, or left open)."""

    po: str
    day: dt.date
    index: int
    created: dt.datetime
    customer: int
    lines: tuple[Line, ...]
    fate: str  # confirmed | canceled | open
    decided_at: dt.datetime | None

    def status(self, as_of: dt.datetime) -> str:
        if self.decided_at is not None and self.decided_at <= as_of:
            return self.fate
        return "open"

    @property
    def placed_total(self) -> Decimal:
        return sum((ln.sub_total(ln.qty) for ln in self.lines), Decimal("0.00"))

    @property
    def confirmed_total(self) -> Decimal:
        return sum((ln.sub_total(ln.confirmed_qty) for ln in self.lines), Decimal("0.00"))

    def ext_total(self, as_of: dt.datetime) -> Decimal:
        return self.confirmed_total if self.status(as_of) == "confirmed" else self.placed_total

    @property
    def principals(self) -> list[Principal]:
        seen: list[Principal] = []
        for ln in self.lines:
            if ln.product.principal not in seen:
                seen.append(ln.product.principal)
        return seen


def order_po(day_index: int, i: int) -> str:
    return str(580_000_000 + day_index * 1000 + i)


def order_facts(world: World, day: dt.date, i: int) -> OrderFacts:
    r = rng(world.seed, PROVIDER, "order", day.isoformat(), i)
    created = _local_ts(r, day, 7, 21)
    customer = world.customer(r)
    n_lines = world.config.lines_per_invoice or r.randint(1, 4)
    principals = r.sample(PRINCIPALS, 1 + (n_lines > 1 and r.random() < 0.4))
    pool = [p for p in CATALOGUE if p.principal in principals]
    products = r.sample(pool, min(n_lines, len(pool)))
    products.sort(key=lambda p: PRINCIPALS.index(p.principal))
    po = order_po(world.day_index(day), i)
    u = r.random()
    fate = "canceled" if u < 0.06 else "open" if u < 0.09 else "confirmed"
    decided_at = None if fate == "open" else created + dt.timedelta(hours=r.randint(1, 30),
                                                                     seconds=r.randint(0, 3599))
    short = r.randrange(len(products)) if fate == "confirmed" and r.random() < 0.25 else None
    lines = []
    for j, p in enumerate(products):
        qty = r.randint(1, 48)
        pct = Decimal(r.choice(["0", "0", "0", "2.5", "5"]))
        fixed = Decimal(r.choice([0, 0, 0, 500]))
        confirmed = max(1, qty // 2) if j == short and qty > 1 else qty
        lines.append(Line(str(int(po) * 10 + j + 1), p, qty, confirmed, pct, fixed))
    return OrderFacts(po, day, i, created, customer, tuple(lines), fate, decided_at)


def _facts_key(world: World) -> tuple:
    c = world.config
    return (c.seed, c.scale, tuple(sorted(c.per_day.items())), c.lines_per_invoice)


@lru_cache(maxsize=4096)
def _orders_cached(key: tuple, day: dt.date) -> tuple[OrderFacts, ...]:
    seed, scale, per_day, lpi = key
    world = World(WorldConfig(seed=seed, scale=scale, per_day=dict(per_day), lines_per_invoice=lpi))
    return tuple(order_facts(world, day, i) for i in range(world.daily_count(PROVIDER, day, BASE_ORDERS_PER_DAY)))


def orders_of_day(world: World, day: dt.date) -> tuple[OrderFacts, ...]:
    """Every order placed on local ``day`` (whether or not it exists yet as of ``as_of``)."""
    if day < EPOCH:
        return ()
    return _orders_cached(_facts_key(world), day)


def _day_of(day_index: int) -> dt.date | None:
    """The business day of an index decoded from an id (None for ids outside the calendar)."""
    return EPOCH + dt.timedelta(days=day_index) if 0 <= day_index < 36_500 else None


def order_by_po(world: World, po: str) -> OrderFacts | None:
    try:
        day_index, i = divmod(int(po) - 580_000_000, 1000)
    except ValueError:
        return None
    day = _day_of(day_index)
    if day is None:
        return None
    orders = orders_of_day(world, day)
    if i >= len(orders) or orders[i].created > world.as_of:
        return None
    return orders[i]


def _dmy(d: dt.date) -> str:
    """``03-05-2024`` (what strftime("%d-%m-%Y") writes, without its cost)."""
    return f"{d.day:02d}-{d.month:02d}-{d.year:04d}"


def _num(x: Decimal) -> int | float:
    """A JSON number for an IDR amount: an integer, or a 2-decimal value whose float repr is exact."""
    return int(x) if x == x.to_integral_value() else float(x)


def render_order_row(f: OrderFacts, as_of: dt.datetime) -> dict[str, Any]:
    code = store_code(f.customer)
    return {
        "customer_code": code,
        "date": f.created.astimezone(WIB).isoformat(),  # "2024-05-03T16:40:41+07:00"
        "distributor_id": "",
        "order_note": "",
        "pickup_point": "",
        "po": f.po,
        "principal_name": [p.name for p in f.principals],
        "status": f.status(as_of),
        "store_code": code,
        "store_id": customer_id(f.customer),
        "store_name": customer_name(f.customer),
        "total": _num(f.placed_total),  # as ordered: can differ from the ext detail (seed)
    }


def _delivery_status(world: World, f: OrderFacts, as_of: dt.datetime) -> str:
    st = f.status(as_of)
    if st != "confirmed":
        return ""
    inv = invoice_for_order(world, f)
    return "Terkirim" if inv is not None and inv.created <= as_of else "Proses Kirim"


def render_order_detail(world: World, f: OrderFacts, as_of: dt.datetime) -> dict[str, Any]:
    """``/v1/order/po/:po``: the plain detail (as ordered; carries product_id)."""
    sm = salesman(f.customer)
    code = store_code(f.customer) or f"aio-{f.customer:04d}"
    return {
        "delivery_status": _delivery_status(world, f, as_of),
        "items": len(f.lines),  # an int here, a list in the ext detail
        "order_detail": [{
            "internal_code": ln.product.internal_code, "name": ln.product.name,
            "ordered_product_id": ln.ordered_product_id, "principal": ln.product.principal.name,
            "principal_code": "", "product_id": ln.product.product_id, "qty": ln.qty,
            "salesman_code": sm[1], "salesman_id": sm[0], "salesman_name": sm[2], "store_code": code,
            "store_name": customer_name(f.customer), "sub": _num(ln.sub_total(ln.qty)),
            "unit": ln.product.measure_unit,
        } for ln in f.lines],
        "order_id": f.po,
        "po": f.po,
        "status": f.status(as_of),
        "store_code": store_code(f.customer),
        "store_name": customer_name(f.customer),
        "total": _num(f.placed_total),
    }


def render_order_ext(world: World, f: OrderFacts, as_of: dt.datetime) -> dict[str, Any]:
    """``/v1/order/po/:po/ext``: the recommended detail (confirmed quantities and totals)."""
    st = f.status(as_of)
    sm = salesman(f.customer)
    confirmed = st == "confirmed"
    items = []
    for p in f.principals:
        products = []
        for ln in f.lines:
            if ln.product.principal != p:
                continue
            qty = ln.confirmed_qty if confirmed else ln.qty
            products.append({
                "cancel_reason": "", "discount_fixed": _num(ln.discount_fixed),
                "discount_percent": _num(ln.discount_percent), "internal_code": ln.product.internal_code,
                "measure_unit": ln.product.measure_unit, "name": ln.product.name,
                "orderedproduct_id": ln.ordered_product_id, "price": _num(ln.product.price), "quantity": qty,
                "salesman_code": sm[1], "salesman_id": sm[0], "salesman_name": sm[2],
                "status_confirmedproduct": {"confirmed": "confirm", "canceled": "cancel"}.get(st, ""),
                "sub_total": _num(ln.sub_total(qty)),
            })
        items.append({"principal": {"api_confirmedprincipal": "", "discount_fixed": 0, "discount_percent": 0,
                                     "name": p.name, "principal_id": p.id,
                                     "store_code": f"{p.code}-{f.customer:04d}",
                                     "store_name": customer_name(f.customer)},
                      "products": products})
    return {
        "cancel_reason": "Toko membatalkan pesanan" if st == "canceled" else "",
        "created_on_date": _dmy(local_date(f.created)),
        "delivery_status": _delivery_status(world, f, as_of),
        "items": items,
        "order_id": f.po,
        "order_note": "",
        "order_status": {"open": "Open PO", "confirmed": "Confirmed PO", "canceled": "Canceled PO"}[st],
        "status_confirmedorder": {"confirmed": "confirm", "canceled": "cancel"}.get(st, ""),
        "store_code": store_code(f.customer),
        "store_name": customer_name(f.customer),
        "total": _num(f.ext_total(as_of)),
    }


# --- invoices and payments -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PaymentFacts:
    id: str
    invoice_id: str
    at: dt.datetime
    amount: Decimal  # 0 for an expired digital attempt
    channel: str
    kind: str  # digital | manual
    expired: bool
    note: str
    outstanding_after: Decimal

    @property
    def status(self) -> str:
        if self.expired:
            return "Waktu pembayaran habis"
        return "Lunas" if self.outstanding_after == 0 else "Cicil"


@dataclass(frozen=True)
class InvoiceFacts:
    id: str
    number: str
    order_day: dt.date
    customer: int
    orders: tuple[OrderFacts, ...]
    created: dt.datetime
    due: dt.date
    subtotal: Decimal
    total_retur: Decimal
    retur_dms_id: str
    pickup: tuple[str, str]
    is_import: bool
    payments: tuple[PaymentFacts, ...]

    @property
    def payable(self) -> Decimal:
        return self.subtotal - self.total_retur

    def payments_as_of(self, as_of: dt.datetime) -> list[PaymentFacts]:
        return [p for p in self.payments if p.at <= as_of]

    def paid(self, as_of: dt.datetime) -> Decimal:
        return sum((p.amount for p in self.payments_as_of(as_of) if not p.expired), Decimal("0.00"))

    def status(self, as_of: dt.datetime) -> str:
        done = [p for p in self.payments_as_of(as_of) if not p.expired]
        if not done:
            return "Belum Dibayar"
        if self.paid(as_of) < self.payable:
            return "Cicil"
        return "Dilunasi Secara Manual" if any(p.kind == "manual" for p in done) else "Lunas"


def invoice_id(order_day: dt.date, n: int) -> str:
    return str(760_000_000 + (order_day - EPOCH).days * 100 + n)


def _payment_plan(r, inv_id: str, created: dt.datetime, payable: Decimal) -> tuple[PaymentFacts, ...]:
    """Payments of one invoice: (time, amount, channel, kind, expired) decided once, replayed by as_of."""
    events: list[tuple[dt.datetime, Decimal, str, str, bool, str]] = []

    def at(days_after: int, base: dt.datetime = created) -> dt.datetime:
        return _local_ts(r, local_date(base) + dt.timedelta(days=days_after), 8, 20)

    u = r.random()
    if u < 0.10:  # never paid; sometimes a QRIS attempt that expires
        if r.random() < 0.5:
            events.append((at(r.randint(2, 10)), Decimal("0.00"), "QRIS", "digital", True, EXPIRED_NOTE))
    elif u < 0.35:  # one digital payment of the whole balance, sometimes after an expired QRIS attempt
        when = at(r.randint(3, 25))
        if r.random() < 0.3:
            events.append((when - dt.timedelta(days=r.randint(1, 2)), Decimal("0.00"), "QRIS", "digital",
                           True, EXPIRED_NOTE))
        ch = r.choice(["KoinWorks", "QRIS"])
        events.append((when, payable, ch, "digital", False, f"Pembayaran telah dilunasi menggunakan {ch}"))
    elif u < 0.60:  # one manual payment
        ch = r.choice(["Cash On Delivery (COD)", "Transfer Manual"])
        events.append((at(r.randint(3, 30)), payable, ch, "manual", False, "Pelunasan"))
    else:  # 2-3 manual instalments; a quarter of plans stop before the last one
        k = r.choice([2, 3])
        parts, left = [], payable
        for _ in range(k - 1):
            part = (left * Decimal(r.randint(30, 60)) / 100 // 1000) * 1000
            parts.append(part)
            left -= part
        parts.append(left)
        if r.random() < 0.25:
            parts = parts[:-1]
        when = at(r.randint(3, 15))
        for j, part in enumerate(parts):
            if part <= 0:
                continue
            ch = r.choice(["Cash On Delivery (COD)", "Transfer Manual"])
            events.append((when, money(part), ch, "manual", False, f"Cicil-{j + 1}"))
            when = at(r.randint(5, 20), when)
    events.sort(key=lambda e: e[0])
    out, outstanding = [], payable
    for k, (when, amount, ch, kind, expired, note) in enumerate(events, start=1):
        outstanding -= amount
        out.append(PaymentFacts(str(int(inv_id) * 10 + k), inv_id, when, amount, ch, kind, expired, note,
                                outstanding))
    return tuple(out)


@lru_cache(maxsize=4096)
def _invoices_cached(key: tuple, order_day: dt.date) -> tuple[InvoiceFacts, ...]:
    seed, scale, per_day, lpi = key
    world = World(WorldConfig(seed=seed, scale=scale, per_day=dict(per_day), lines_per_invoice=lpi))
    by_store: dict[int, list[OrderFacts]] = {}
    for f in orders_of_day(world, order_day):
        if f.fate == "confirmed":
            by_store.setdefault(f.customer, []).append(f)
    out = []
    for n in sorted(by_store):
        orders = tuple(by_store[n])
        r = rng(seed, PROVIDER, "invoice", order_day.isoformat(), n)
        inv_id = invoice_id(order_day, n)
        created = _local_ts(r, order_day + dt.timedelta(days=r.randint(*INVOICE_LAG_DAYS)), 8, 17)
        subtotal = sum((o.confirmed_total for o in orders), Decimal("0.00"))
        retur, retur_id = Decimal("0.00"), ""
        if r.random() < 0.2:
            retur = money(subtotal * Decimal(r.randint(3, 15)) / 100 // 100 * 100)
            retur_id = f"RTR/TM/{inv_id[-5:]}"
        due = local_date(created) + dt.timedelta(days=r.choice([7, 14, 30]))
        out.append(InvoiceFacts(
            id=inv_id, number=f"INV/TM/{order_day:%y%m%d}/{n:03d}", order_day=order_day, customer=n,
            orders=orders, created=created, due=due, subtotal=subtotal, total_retur=retur,
            retur_dms_id=retur_id, pickup=r.choice(PICKUPS), is_import=r.random() < 0.1,
            payments=_payment_plan(r, inv_id, created, subtotal - retur)))
    return tuple(out)


def invoices_of_order_day(world: World, order_day: dt.date) -> tuple[InvoiceFacts, ...]:
    if order_day < EPOCH:
        return ()
    return _invoices_cached(_facts_key(world), order_day)


def invoice_for_order(world: World, f: OrderFacts) -> InvoiceFacts | None:
    for inv in invoices_of_order_day(world, f.day):
        if inv.customer == f.customer:
            return inv if any(o.po == f.po for o in inv.orders) else None
    return None


def invoice_by_id(world: World, inv_id: str) -> InvoiceFacts | None:
    try:
        day_index, n = divmod(int(inv_id) - 760_000_000, 100)
    except ValueError:
        return None
    day = _day_of(day_index)
    if day is None:
        return None
    for inv in invoices_of_order_day(world, day):
        if inv.customer == n and inv.created <= world.as_of:
            return inv
    return None


def render_invoice(inv: InvoiceFacts, as_of: dt.datetime, detail: bool = False) -> dict[str, Any]:
    attempts = inv.payments_as_of(as_of)
    done = [p for p in attempts if not p.expired]
    paid = inv.paid(as_of)
    sm = salesman(inv.customer)
    path = f"http://manager.staging.idh.id/uploads/distributor/354680330/invoice/{customer_id(inv.customer)}"
    row: dict[str, Any] = {
        "created_by": "tulusmaju",
        "created_on": _dmy(local_date(inv.created)),
        "due_date": _dmy(inv.due),
        # file names may contain spaces (seed)
        "file": f"{path}/{inv.id}/Faktur {inv.number.replace('/', '_')}.pdf" if not inv.is_import else "",
        "file_retur": f"{path}/{inv.id}/fileretur/Retur {inv.id}.pdf" if inv.total_retur else "",
        "id": inv.id,
        "invoice_number": inv.number,
        "is_import": inv.is_import,
        "is_paid": bool(done) and paid >= inv.payable,
        "is_pay_manually": any(p.kind == "manual" for p in done),
        "is_select_payment": bool(attempts),
        "order_ids": [o.po for o in inv.orders],
        "order_ids_formatted": ", ".join(o.po for o in inv.orders),
        "pickup_id": inv.pickup[0],
        "pickup_name": inv.pickup[1],
        "retur_dms_id": inv.retur_dms_id,
        "salesman_id": sm[0],
        "salesman_name": sm[2],
        "status": inv.status(as_of),
        "store_id": customer_id(inv.customer),
        "store_name": customer_name(inv.customer),
        "subtotal": _num(inv.subtotal),
        "total_retur": _num(inv.total_retur),
    }
    if attempts:  # the key disappears until the store selects a payment (seed)
        names = [p.channel for p in attempts] + (["Retur"] if inv.total_retur else [])
        row["list_payment"] = ", ".join(names)
    if detail and done:  # [INF] absent, like list_payment, until something was paid
        row["list_payments"] = [{
            "created_on": _dmy(local_date(p.at)), "note": p.note,
            "outstanding_balance": _num(p.outstanding_after),
            "payment_date": _dmy(local_date(p.at)), "payment_name": p.channel,
            "status": p.status, "title": f"Pembayaran ke-{k}", "total": _num(p.amount),
        } for k, p in reversed(list(enumerate(done, start=1)))]
    return dict(sorted(row.items()))


def render_payment(inv: InvoiceFacts, p: PaymentFacts, as_of: dt.datetime) -> dict[str, Any]:
    return {
        "id": p.id,
        "invoice_id": p.invoice_id,
        # cash through the app, confirmed by the admin (seed: "Confirm Payment Manually")
        "is_correct_manually": p.channel == "Cash On Delivery (COD)",
        # IDH transfers digital money to the distributor two days later
        "is_disbursed": p.kind == "digital" and not p.expired and as_of >= p.at + dt.timedelta(days=2),
        "note": p.note,
        "outstanding_balance": _num(p.outstanding_after),
        "payment_date": _dmy(local_date(p.at)),
        "paymentchannel_name": p.channel,
        "status_translate": p.status,
        "store_id": customer_id(inv.customer),
        "store_name": customer_name(inv.customer),
        "total_payment": _num(p.amount),
    }


# --- returns -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReturnItem:
    id: int
    product: Product
    quantity: int
    approved: int  # quantity approved at confirmation
    return_type: str
    condition: str


@dataclass(frozen=True)
class ReturnFacts:
    id: int
    day: dt.date
    index: int
    created: dt.datetime
    customer: int
    principal: Principal
    items: tuple[ReturnItem, ...]
    canceled_at: dt.datetime | None
    confirmed_at: dt.datetime | None
    processed_at: dt.datetime | None

    def state(self, as_of: dt.datetime) -> str:
        if self.canceled_at is not None and self.canceled_at <= as_of:
            return "canceled"
        if self.processed_at is not None and self.processed_at <= as_of:
            return "processed"
        if self.confirmed_at is not None and self.confirmed_at <= as_of:
            return "confirmed"
        return "open"

    def approved_value(self, as_of: dt.datetime) -> Decimal:
        """What the distributor accepted back: approved quantity x buying price (0 until confirmed)."""
        if self.state(as_of) not in ("confirmed", "processed"):
            return Decimal("0.00")
        return sum((it.product.price * it.approved for it in self.items), Decimal("0.00"))


def return_facts(world: World, day: dt.date, i: int) -> ReturnFacts:
    r = rng(world.seed, PROVIDER, "return", day.isoformat(), i)
    created = _local_ts(r, day, 8, 18)
    customer = world.customer(r)
    principal = r.choice(PRINCIPALS)
    pool = [p for p in CATALOGUE if p.principal == principal]
    rid = (day - EPOCH).days * 100 + i + 1  # an int, as in the seed
    items = []
    for j, p in enumerate(r.sample(pool, r.randint(1, 2))):
        qty = r.randint(1, 6)
        u = r.random()
        approved = qty if u < 0.7 else (r.randint(1, qty - 1) if qty > 1 and u < 0.9 else 0)
        items.append(ReturnItem(rid * 10 + j + 1, p, qty, approved, r.choice(["return", "exchange"]),
                                r.choice(["good", "bad"])))
    canceled = confirmed = processed = None
    if r.random() < 0.12:
        canceled = created + dt.timedelta(days=r.randint(1, 5), seconds=r.randint(0, 3599))
    else:
        confirmed = created + dt.timedelta(days=r.randint(1, 4), seconds=r.randint(0, 3599))
        processed = confirmed + dt.timedelta(days=r.randint(1, 3), seconds=r.randint(0, 3599))
    return ReturnFacts(rid, day, i, created, customer, principal, tuple(items), canceled, confirmed, processed)


def returns_of_day(world: World, day: dt.date) -> list[ReturnFacts]:
    n = world.daily_count(f"{PROVIDER}:returns", day, BASE_RETURNS_PER_DAY)
    return [return_facts(world, day, i) for i in range(n)]


def _ms(ts: dt.datetime | None, as_of: dt.datetime) -> int:
    return int(ts.timestamp() * 1000) if ts is not None and ts <= as_of else 0  # seed: 0 = none


def render_return(f: ReturnFacts, as_of: dt.datetime, include_items: bool) -> dict[str, Any]:
    st = f.state(as_of)
    admin = ("1968367", "Admin Tulus Maju")
    sm = salesman(f.customer)
    decided = f.canceled_at if st == "canceled" else f.confirmed_at if st in ("confirmed", "processed") else None
    row: dict[str, Any] = {
        "admin_note": "",
        "canceled_by": admin[0] if st == "canceled" else "",
        "canceled_on_milli": _ms(f.canceled_at, as_of),
        "confirmed_by": admin[0] if st in ("confirmed", "processed") else "",
        "confirmed_on_milli": _ms(f.confirmed_at, as_of),
        "created_by": customer_id(f.customer),
        "created_on_milli": _ms(f.created, as_of),
        "customer_code": store_code(f.customer),
        "distributor_id": DISTRIBUTOR[0],
        "distributor_name": DISTRIBUTOR[1],
        "id": f.id,
        "is_canceled": st == "canceled",
        "is_confirmed": st in ("confirmed", "processed"),
        "is_processed": st == "processed",
        "principal_id": f.principal.id,
        "principal_name": f.principal.name,
        # seed: a cancelled request also shows who processed it, and when
        "processed_by": admin[0] if st in ("processed", "canceled") else "",
        "processed_by_name": admin[1] if st in ("processed", "canceled") else "",
        "processed_on_milli": _ms(f.processed_at if st == "processed" else f.canceled_at, as_of),
        "salesman_code": sm[1],
        "salesman_id": sm[0],
        "salesman_name": sm[2],
        "store_email": f"toko{f.customer:03d}@example.net",
        "store_id": customer_id(f.customer),
        "store_name": customer_name(f.customer),
        "store_phone": f"0812{f.customer:04d}0000",
    }
    if include_items:
        items = []
        for it in f.items:
            statuses = []
            if decided is not None:
                parts = ([("rejected", 0)] if st == "canceled" else
                         [(s, q) for s, q in (("approved", it.approved), ("rejected", it.quantity - it.approved))
                          if q > 0])
                for k, (status, q) in enumerate(parts):
                    statuses.append({
                        "admin_note": "", "confirmed_by": admin[0], "confirmed_by_name": admin[1],
                        "confirmed_measure_unit": it.product.measure_unit if q else "",
                        "confirmed_on_milli": _ms(decided, as_of), "confirmed_quantity": q,
                        "created_by": admin[0], "created_on_milli": _ms(decided, as_of),
                        "distributor_id": DISTRIBUTOR[0], "id": it.id * 10 + k + 1,
                        "pickup_status": "picked_up" if st == "processed" and status == "approved" else "",
                        "product_id": it.product.product_id, "request_status": status,
                        "store_id": customer_id(f.customer), "storeretur_id": f.id, "storereturitem_id": it.id,
                    })
            items.append({
                "buying_price": _num(it.product.price),
                "completed_by": admin[0] if st == "processed" else "",
                "completed_on_milli": _ms(f.processed_at, as_of) if st == "processed" else 0,
                "created_by": customer_id(f.customer), "created_on_milli": _ms(f.created, as_of),
                "discount": 0, "distributor_id": DISTRIBUTOR[0], "id": it.id, "is_completed": st == "processed",
                "measure_unit": it.product.measure_unit, "note": "", "principal_id": f.principal.id,
                "principal_name": f.principal.name, "product_condition": it.condition,
                "product_id": it.product.product_id, "product_name": it.product.name,
                "quantity": it.quantity, "return_type": it.return_type, "statuses": statuses,
                "store_id": customer_id(f.customer), "storeretur_id": f.id,
            })
        row["items"] = items
    return dict(sorted(row.items()))


def render_product(p: Product, detail: bool) -> dict[str, Any]:
    row = {"internal_code": p.internal_code, "measure_unit": p.measure_unit, "name": p.name,
           "price": _num(p.price), "product_id": p.product_id}
    if detail:
        row.update(description=p.description, principal=p.principal.name)
    return dict(sorted(row.items()))


# --- windows and truth ---------------------------------------------------------------------------------
def local_dates(world: World, start: dt.datetime | None, end: dt.datetime | None) -> tuple[dt.date, dt.date]:
    """The provider-local dates a run for [start, end) asks for: start.date() .. (end - 1 day).date()."""
    first = start.date() if start else EPOCH
    last = (end - dt.timedelta(days=1)).date() if end else world.as_of.astimezone(WIB).date()
    return first, last


def _days(first: dt.date, last: dt.date) -> Iterator[dt.date]:
    d = max(first, EPOCH)
    while d <= last:
        yield d
        d += dt.timedelta(days=1)


def iter_orders(world: World, first: dt.date, last: dt.date) -> Iterator[OrderFacts]:
    as_of = world.as_of
    for day in _days(first, min(last, local_date(as_of))):
        for f in orders_of_day(world, day):
            if f.created <= as_of:
                yield f


def iter_invoices(world: World, first: dt.date, last: dt.date) -> Iterator[InvoiceFacts]:
    """Invoices created (local date) in [first, last] that exist as of ``as_of``, newest first."""
    as_of = world.as_of
    found = []
    for day in _days(first - dt.timedelta(days=INVOICE_LAG_DAYS[1]), min(last, local_date(as_of))):
        for inv in invoices_of_order_day(world, day):
            if inv.created <= as_of and first <= local_date(inv.created) <= last:
                found.append(inv)
    found.sort(key=lambda i: (i.created, i.id), reverse=True)
    yield from found


def iter_payments(world: World, first: dt.date, last: dt.date, kind: str | None = None
                  ) -> Iterator[tuple[InvoiceFacts, PaymentFacts]]:
    """Payment events (local date in [first, last], up to ``as_of``), newest first."""
    as_of = world.as_of
    found = []
    for inv in iter_invoices(world, first - MAX_PAYMENT_LAG, last):
        for p in inv.payments_as_of(as_of):
            if first <= local_date(p.at) <= last and (kind is None or p.kind == kind):
                found.append((inv, p))
    found.sort(key=lambda x: (x[1].at, x[1].id), reverse=True)
    yield from found


def iter_returns(world: World, first: dt.date, last: dt.date) -> Iterator[ReturnFacts]:
    as_of = world.as_of
    for day in _days(first, min(last, local_date(as_of))):
        for f in returns_of_day(world, day):
            if f.created <= as_of:
                yield f


def products_seen(world: World, first: dt.date, last: dt.date) -> list[Product]:
    """The products the extraction fetches: those named in the window's orders and returns."""
    ids = {ln.product.product_id for f in iter_orders(world, first, last) for ln in f.lines}
    ids |= {it.product.product_id for f in iter_returns(world, first, last) for it in f.items}
    return [PRODUCTS_BY_ID[i] for i in sorted(ids)]


def truth(world: World, start: dt.datetime | None = None, end: dt.datetime | None = None) -> dict[str, Any]:
    """What a full extraction of [start, end) yields (counts, exact money, receivables), see docstring."""
    as_of = world.as_of
    first, last = local_dates(world, start, end)
    zero = Decimal("0.00")
    orders = list(iter_orders(world, first, last))
    invoices = list(iter_invoices(world, first, last))
    payments = [p for _, p in iter_payments(world, first, last)]
    returns = list(iter_returns(world, first, last))
    products = products_seen(world, first, last)
    receivables: dict[tuple[str, str], dict[str, Decimal]] = {}
    for inv in invoices:
        c = receivables.setdefault((f"C{inv.customer:03d}", CURRENCY),
                                   {"invoiced": zero, "paid": zero, "open": zero})
        paid = inv.paid(as_of)
        c["invoiced"] += inv.subtotal
        c["paid"] += paid
        c["open"] += inv.subtotal - paid - inv.total_retur
    return {
        "provider": PROVIDER,
        "counts": {"orders": len(orders), "invoices": len(invoices), "payments": len(payments),
                   "customers": World.N_CUSTOMERS, "returns": len(returns), "products": len(products)},
        "sums": {
            "orders": {"total": sum((f.placed_total for f in orders), zero),
                       "ext_total": sum((f.ext_total(as_of) for f in orders), zero)},
            "invoices": {"subtotal": sum((i.subtotal for i in invoices), zero),
                         "total_retur": sum((i.total_retur for i in invoices), zero)},
            "payments": {"total_payment": sum((p.amount for p in payments), zero)},
            "customers": {},
            "returns": {},  # money sits in items[] (buying_price x quantity), no top-level column
            "products": {"price": sum((p.price for p in products), zero)},
        },
        "receivables": receivables,
    }


# --- HTTP ----------------------------------------------------------------------------------------------
IDH_SERVER = {"Server": "idhServer"}
BEEGO_SERVER = {"Server": "beegoServer:2.0.0"}


def _ok(body: dict[str, Any], server: dict[str, str]) -> Response:
    return json_response(body, headers=server)  # JSONResponse's text, serialised without its overhead


def _fail(message: str, server: dict[str, str], key: str = "error") -> JSONResponse:
    # Business errors are HTTP 200 with success:false (seed: "Data dengan nomer tagihan ... tidak ditemukan").
    return JSONResponse({key: message, "success": False}, 200, headers=server)


def _parse_ddmmyyyy_range(value: str) -> tuple[dt.date, dt.date]:
    a, sep, b = value.partition("-")
    if not sep or len(a) != 8 or len(b) != 8:
        raise ValueError
    return dt.datetime.strptime(a, "%d%m%Y").date(), dt.datetime.strptime(b, "%d%m%Y").date()


def _parse_unix_range(value: str) -> tuple[int, int]:
    a, sep, b = value.partition("-")
    if not sep:
        raise ValueError
    return int(a), int(b)


def _int(value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    n = int(value)
    if n < 0:
        raise ValueError
    return n




def _page(keys: list, page: int, size: int, faults) -> list:
    """One page of ``keys`` (1-based), with the drift/duplicates faults applied."""
    lo = (page - 1) * size
    if faults.drift and page > 1:
        lo -= 1  # a record was inserted ahead of this page while the client paged: one repeats
    chunk = keys[lo: lo + size]
    if faults.duplicates and page > 1 and chunk and lo >= 1:
        chunk = [keys[lo - 1], *chunk]  # the previous page's last record again
    return chunk


def _beego_paginator(request: Request, page: int, limit: int, total: int) -> dict[str, Any]:
    pages = math.ceil(total / limit) if total else 0
    base = sorted((k, v) for k, v in request.query_params.multi_items() if k != "p")

    def link(p: int | None) -> str:
        params = sorted(base + ([("p", str(p))] if p and p > 1 else []))
        return f"{request.url.path}?{urlencode(params)}" if params else request.url.path

    lo = max(1, min(page - 4, pages - 9))
    return {"HasNext": page < pages, "HasPrev": page > 1, "MaxPages": 0, "Page": page,
            "PageLinkFirst": link(1), "PageLinkLast": link(pages) if pages else "",
            "PageLinkNext": link(page + 1) if page < pages else "",
            "PageLinkPrev": link(page - 1) if page > 1 else "", "PageNums": pages,
            "Pages": list(range(lo, min(pages, lo + 9) + 1)) if pages else [], "PerPageNums": limit}


def make_app(state) -> FastAPI:
    """The IDH API Manager app; ``state`` is the shared SimState (world, faults, credentials)."""
    app = FastAPI(title="IDH API Manager simulator")
    cache = QueryCache()
    first_use: dict[str, float] = {}

    def auth_error(request: Request) -> JSONResponse | None:
        server = BEEGO_SERVER if request.url.path.rstrip("/").split("/v1/", 1)[-1].startswith("invoice") \
            else IDH_SERVER
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or token != state.credentials[PROVIDER]["token"]:
            return JSONResponse({"error": "invalid token - error parse token", "success": False}, 401,
                                headers=server)
        ttl = state.faults[PROVIDER].token_ttl
        if ttl is not None:
            started = first_use.setdefault(token, time.monotonic())
            if time.monotonic() - started > ttl:
                return JSONResponse({"error": "token is expired", "success": False}, 401, headers=server)
        return None

    class Auth:
        """Every request needs the token. Plain ASGI: ``@app.middleware("http")`` would cost a task and a
        body stream per request, a good part of a small detail request's CPU."""

        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            if scope["type"] == "http" and (err := auth_error(Request(scope))) is not None:
                return await err(scope, receive, send)
            return await self.app(scope, receive, send)

    app.add_middleware(Auth)

    def world_key() -> tuple:
        return (*_facts_key(state.world), state.world.as_of)

    @app.get("/v1/ping")
    def ping():
        return _ok({"success": True}, IDH_SERVER)

    # --- orders ---
    @app.get("/v1/order")
    def list_orders(request: Request):
        q = request.query_params
        world = state.world
        as_of = world.as_of
        try:
            page = max(1, _int(q.get("page"), 1))
        except ValueError:
            return _fail("page harus berupa angka", IDH_SERVER)
        if q.get("date"):
            try:
                first, last = _parse_ddmmyyyy_range(q["date"])
            except ValueError:
                return _fail("format tanggal harus DDMMYYYY-DDMMYYYY", IDH_SERVER)
            if last < first:
                return _fail("tanggal akhir harus setelah tanggal awal", IDH_SERVER)
            if (last - first).days > MAX_ORDER_RANGE_DAYS:
                return _fail(f"rentang tanggal maksimal {MAX_ORDER_RANGE_DAYS} hari", IDH_SERVER)
        else:  # seed: "last 30 days" by default
            last = local_date(as_of)
            first = last - dt.timedelta(days=MAX_ORDER_RANGE_DAYS)
        status = q.get("status", "")
        if status not in ("", "open", "confirmed", "noncanceled"):
            return _fail("status harus open, confirmed atau noncanceled", IDH_SERVER)
        store, principal = q.get("store", ""), q.get("principal", "")
        for name, value in (("store", store), ("principal", principal)):
            if value and len(value) < 3:
                return _fail(f"parameter {name} minimal 3 huruf", IDH_SERVER)

        def compute():
            out = []
            for f in iter_orders(world, first, last):
                st = f.status(as_of)
                if (status == "noncanceled" and st == "canceled") or (status in ("open", "confirmed") and st != status):
                    continue
                if store and store.lower() not in (customer_name(f.customer) + " " + store_code(f.customer)).lower():
                    continue
                if principal and not any(principal.lower() in p.name.lower() for p in f.principals):
                    continue
                out.append(f.po)
            return out

        keys = cache.get(("order", world_key(), first, last, status, store, principal), compute)
        chunk = _page(keys, page, ORDER_PAGE_SIZE, state.faults[PROVIDER])
        results = [render_order_row(order_by_po(world, po), as_of) for po in chunk]
        return _ok({"paginator": {"current_page": page, "data_count": len(keys),
                                  "total_page": math.ceil(len(keys) / ORDER_PAGE_SIZE)},
                    "results": results, "success": True}, IDH_SERVER)

    @app.get("/v1/order/po/{po}")
    def order_detail(po: str):
        f = order_by_po(state.world, po)
        if f is None:
            return _fail(f"order dengan po {po} tidak ditemukan", IDH_SERVER)
        return _ok({"object": render_order_detail(state.world, f, state.world.as_of), "success": True}, IDH_SERVER)

    @app.get("/v1/order/po/{po}/ext")
    def order_ext(po: str):
        f = order_by_po(state.world, po)
        if f is None:
            return _fail(f"order dengan po {po} tidak ditemukan", IDH_SERVER)
        return _ok({"object": render_order_ext(state.world, f, state.world.as_of), "success": True}, IDH_SERVER)

    # --- stores ---
    @app.get("/v1/store")
    def list_stores(request: Request):
        try:
            page = max(1, _int(request.query_params.get("page"), 1))
        except ValueError:
            return _fail("page harus berupa angka", IDH_SERVER)
        keys = list(range(1, World.N_CUSTOMERS + 1))
        chunk = _page(keys, page, STORE_PAGE_SIZE, state.faults[PROVIDER])
        return _ok({"paginator": {"current_page": page, "data_count": len(keys),
                                  "total_page": math.ceil(len(keys) / STORE_PAGE_SIZE)},
                    "results": [render_store_row(n) for n in chunk], "success": True}, IDH_SERVER)

    @app.get("/v1/store/id/{store_id}")
    def store_detail(store_id: str):
        n = customer_of(store_id)
        if n is None:
            return _fail(f"toko dengan id {store_id} tidak ditemukan", IDH_SERVER)
        # seed: the store detail answers under "results" (an object), not "object"
        return _ok({"results": render_store_detail(n), "success": True}, IDH_SERVER)

    # --- products ---
    @app.get("/v1/product")
    def list_products(request: Request):
        q = request.query_params
        name, code = q.get("name", ""), q.get("internal_code", "")
        for label, value in (("name", name), ("internal_code", code)):
            if value and len(value) < 3:
                return _fail(f"parameter {label} minimal 3 huruf", IDH_SERVER)
        try:
            page = max(1, _int(q.get("page"), 1))
        except ValueError:
            return _fail("page harus berupa angka", IDH_SERVER)
        matches = [p for p in CATALOGUE if name.lower() in p.name.lower() and code.lower() in p.internal_code.lower()]
        shown = matches[:PRODUCT_LIST_CAP]  # seed: the list never shows more than 20 items
        chunk = shown[(page - 1) * PRODUCT_PAGE_SIZE: page * PRODUCT_PAGE_SIZE]
        return _ok({"paginator": {"current_page": page, "data_count": len(shown),
                                  "total_page": math.ceil(len(shown) / PRODUCT_PAGE_SIZE)},
                    "results": [render_product(p, False) for p in chunk], "success": True}, IDH_SERVER)

    @app.get("/v1/product/id/{product_id}")
    def product_detail(product_id: str):
        p = PRODUCTS_BY_ID.get(product_id)
        if p is None:
            return _fail(f"produk dengan id {product_id} tidak ditemukan", IDH_SERVER)
        return _ok({"object": render_product(p, True), "success": True}, IDH_SERVER)

    # --- returns ---
    @app.get("/v1/returnexchange")
    def list_returns(request: Request):
        q = request.query_params
        world = state.world
        as_of = world.as_of
        try:
            page = max(1, _int(q.get("page"), 1))  # seed: page=0 answers current_page 1
            limit = min(100, max(1, _int(q.get("limit"), 10)))
        except ValueError:
            return _fail("page dan limit harus berupa angka", IDH_SERVER)
        if q.get("date"):
            try:
                first, last = _parse_ddmmyyyy_range(q["date"])
            except ValueError:
                return _fail("format tanggal harus DDMMYYYY-DDMMYYYY", IDH_SERVER)
        else:
            last = local_date(as_of)
            first = last - dt.timedelta(days=MAX_ORDER_RANGE_DAYS)
        open_only = q.get("is_open_only", "false").lower() == "true"
        include_items = q.get("include_items", "false").lower() == "true"
        store_id = q.get("store_id", "")

        def compute():
            return [(f.day, f.index) for f in iter_returns(world, first, last)
                    if (not open_only or f.state(as_of) in ("open", "confirmed"))
                    and (not store_id or customer_id(f.customer) == store_id)]

        keys = cache.get(("returns", world_key(), first, last, open_only, store_id), compute)
        chunk = _page(keys, page, limit, state.faults[PROVIDER])
        results = [render_return(return_facts(world, d, i), as_of, include_items) for d, i in chunk]
        return _ok({"paginator": {"current_page": page, "data_count": len(keys),
                                  "total_page": math.ceil(len(keys) / limit)},
                    "results": results, "success": True}, IDH_SERVER)

    # --- invoices and payments (beego) ---
    def beego_common(request: Request):
        q = request.query_params
        page = max(1, _int(q.get("p"), 1))  # beego reads "p"; "page" is only echoed in the links
        limit = min(BEEGO_MAX_LIMIT, max(1, _int(q.get("limit"), BEEGO_DEFAULT_LIMIT)))
        if q.get("unixtime_range"):
            s, e = _parse_unix_range(q["unixtime_range"])
        else:
            s, e = 0, 2**62
        return page, limit, s, e

    def unix_dates(s: int, e: int) -> tuple[dt.date, dt.date]:
        lo = dt.datetime.fromtimestamp(max(0, s), UTC)
        hi = dt.datetime.fromtimestamp(min(e, 4_102_444_800), UTC)  # capped at 2100: no date overflow
        return local_date(lo), local_date(hi)

    @app.get("/v1/invoice")
    def list_invoices(request: Request):
        world = state.world
        as_of = world.as_of
        try:
            page, limit, s, e = beego_common(request)
        except ValueError:
            return _fail("parameter tidak valid", BEEGO_SERVER)
        q = request.query_params
        search, store_id = q.get("search", "").lower(), q.get("store_id", "")

        def compute():
            first, last = unix_dates(s, e)
            return [inv.id for inv in iter_invoices(world, first, last)
                    if s <= inv.created.timestamp() <= e
                    and (not store_id or customer_id(inv.customer) == store_id)
                    and (not search or search in f"{inv.id} {inv.number} {customer_name(inv.customer)}".lower())]

        keys = cache.get(("invoice", world_key(), s, e, search, store_id), compute)
        chunk = _page(keys, page, limit, state.faults[PROVIDER])
        results = [render_invoice(invoice_by_id(world, i), as_of) for i in chunk]
        return _ok({"data_count": len(keys), "paginator": _beego_paginator(request, page, limit, len(keys)),
                    "results": results, "success": True}, BEEGO_SERVER)

    @app.get("/v1/invoice/detail/{inv_id}")
    def invoice_detail(inv_id: str):
        inv = invoice_by_id(state.world, inv_id)
        if inv is None:
            return _fail(f"Data dengan nomer tagihan {inv_id} tidak ditemukan", BEEGO_SERVER)
        return _ok({"object": render_invoice(inv, state.world.as_of, detail=True), "success": True}, BEEGO_SERVER)

    @app.get("/v1/invoice/payment/history")
    def payment_history(request: Request):
        world = state.world
        as_of = world.as_of
        try:
            page, limit, s, e = beego_common(request)
        except ValueError:
            return _fail("parameter tidak valid", BEEGO_SERVER)
        q = request.query_params
        ptype = q.get("payment_type", "digital")  # [INF] the default when absent
        if ptype not in ("digital", "manually"):
            return _fail("payment_type harus digital atau manually", BEEGO_SERVER)
        kind = "digital" if ptype == "digital" else "manual"
        search, store_id = q.get("search", "").lower(), q.get("store_id", "")

        def compute():
            first, last = unix_dates(s, e)
            return [(inv.id, p.id) for inv, p in iter_payments(world, first, last, kind)
                    if s <= p.at.timestamp() <= e
                    and (not store_id or customer_id(inv.customer) == store_id)
                    and (not search or search in f"{inv.id} {customer_name(inv.customer)}".lower())]

        keys = cache.get(("payments", world_key(), s, e, kind, search, store_id), compute)
        chunk = _page(keys, page, limit, state.faults[PROVIDER])
        results = []
        for inv_id, pid in chunk:
            inv = invoice_by_id(world, inv_id)
            results.append(render_payment(inv, next(p for p in inv.payments if p.id == pid), as_of))
        return _ok({"data_count": len(keys), "paginator": _beego_paginator(request, page, limit, len(keys)),
                    "results": results, "success": True}, BEEGO_SERVER)

    return app
