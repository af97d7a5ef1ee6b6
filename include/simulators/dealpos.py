"""DealPOS API 3.1.0 simulator (seed 000, providers.md section 1): a retail POS tenant in Indonesia.

The API, as the seed and the public documentation describe it:

* ``POST /api/v3/Token/OAuth2`` with a JSON body ``{"client_id", "client_secret"}`` (both GUIDs) returns
  ``{access_token, token_type: "Bearer", expires_in, expiredat}``; every other call needs
  ``Authorization: Bearer <token>`` and answers 401 ``{"Message": "Authorization has been denied for
  this request."}`` without a valid one (ASP.NET Web API wording). Tokens announce 3600 s; the
  ``token_ttl`` fault makes them die earlier than announced (a token expiring mid-run).
* Reads are "GET with a JSON body, also available as HTTP POST with the same endpoint" [SEED]:
  ``Invoice/MultipleOutlet`` (bare array), ``.../WithTotalCount`` (``{Data, TotalCount}``),
  ``.../WithVariant`` (lines in ``Variants[]``; ``Payments[]`` only with the header
  ``IncludePayments: true``), ``Invoice/GetCountMultipleOutlet`` (a bare number), ``Invoice/Return``,
  ``Invoice/Detail`` and ``Invoice/IDByNumber`` (query or body). ``Payment/Invoice`` is a GET read;
  its POST twin is ``Payment/Invoice/p`` because ``POST Payment/Invoice`` *adds* a payment [DOC].
  ``Outlet``, ``Customer`` and ``Product`` are plain GETs (POST on them would create records).
  Parameter names are case-insensitive (.NET model binding). A bodyless GET that declares
  ``Content-Type: application/json`` fails with 500 [CODE quirk].
* ``From``/``To`` are inclusive tenant-local dates ``yyyy-mm-dd`` on the document date (sell date,
  return date, payment date); ``PageNumber`` (1-based) / ``PageSize`` (1..1000); bare arrays end with
  a short or empty page. ``Status`` defaults to ``Active``: voided invoices only come with
  ``Status: "Any"`` or ``"Cancelled"``.
* Datetimes carry no offset (tenant local time, Asia/Jakarta, UTC+7) with a .NET 2-digit fraction
  (``2025-02-03T11:10:50.57``); ``0001-01-01T00:00:00`` is the null date. Money is JSON numbers in
  IDR, integral except tax and instalment amounts (never floats on the wire: exact decimal text).
* The documented rate limit is this module's ``DEFAULT_FAULTS``: 50 requests per 180 s across all
  endpoints, ``RateLimit-*`` headers, 429 past it (the generic fault middleware does it).

Undocumented details chosen here [INF]: invoice rows carry ``ReturnAmount`` (value credited by returns
of that invoice); return rows carry ``InvoiceID`` and ``ReferenceNumber`` (the original invoice's id
and number); payments carry an ``ID`` GUID and a reference ``Code``; ``Payment/Invoice`` items carry
``InvoiceID``/``Invoice``; a refund is a payment with a negative ``Amount``.

The business: a handful of outlets (one closes on 2025-02-01, one opens on 2025-03-01, one after the
tests' as_of) selling to the shared business customers. Invoice numbers ``YY.MM.DDnnn`` count per
outlet, so a number is unique only per outlet (key on ``ID``). Walk-in sales (``Offline``) are paid at
the till; marketplace orders (``Tokopedia``/``Shopee``) are settled 3-10 days later; ``Wholesale``
invoices are due in 30 days and paid by instalments, partly, or never (overdue). About 6% of invoices
get a return: the returned value is credited; if more than what is still owed was already paid, the
difference is refunded at once as a negative payment. A few invoices are voided (``Status:
Cancelled``) before any payment, shipment or return.

Receivables rule (``truth()["receivables"]``, reproduced by the dbt marts from the staging models):
per business customer (``CustomerID`` -> ``C<n>``) and currency (IDR), over invoices with
``Status = Active`` as of the simulator's now,
``invoiced = sum(Amount)``, ``paid = sum(Payments[].Amount)`` (refunds negative),
``open = invoiced - paid - sum(ReturnAmount)``. Voided invoices count nowhere (they never have
payments or returns).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from bisect import bisect_right
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from simulators.jsonbody import dumps, json_response, trimmed_number
from simulators.world import EPOCH, UTC, QueryCache, World, WorldConfig, customer_name, money, rng

PROVIDER = "dealpos"
CURRENCY = "IDR"
LOCAL = ZoneInfo("Asia/Jakarta")  # tenant local time (WIB, UTC+7, no DST)
BASE_PER_DAY = 30
MAX_LAG = dt.timedelta(days=70)  # no payment/return happens later than this after an invoice
TOKEN_LIFETIME = 3600  # announced expires_in (not documented; public clients fall back to 3600)
MAX_PAGE_SIZE = 1000
NULL_DATE = "0001-01-01T00:00:00"
ZERO = Decimal(0)
CREDENTIALS = {  # demo credentials of the simulator only (the real API wants GUIDs)
    "client_id": "5b0f2a4e-1d7c-4c3e-9a51-3f2d8e6b7a10",
    "client_secret": "c8e1d5f3-7a29-4b6e-8f04-2d9b1c6a5e37",
}
#: DealPOS documents "50 requests across all endpoints per 180 seconds" (api-dashboard guide).
DEFAULT_FAULTS = {"rate_limit": (50, 180)}
#: The stream names of the hook's spec (truth() counts every one of them).
STREAMS = ("invoices", "returns", "payments_received", "outlets", "customers", "products")

TAGS = ("Offline", "Tokopedia", "Shopee", "Wholesale")
TAG_WEIGHTS = (0.55, 0.15, 0.10, 0.20)
VOID_RATE = {"Offline": 0.02, "Tokopedia": 0.08, "Shopee": 0.08, "Wholesale": 0.03}
RETURN_RATE = 0.06
TILL_METHODS = ("Cash", "QRIS", "Debit BCA")
TRANSFER_METHODS = ("Transfer BCA", "Transfer Mandiri", "Giro")


def guid(*parts: object) -> str:
    """A deterministic GUID-shaped id."""
    h = hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


@lru_cache(maxsize=1024)
def customer_id(n: int) -> str:
    """DealPOS's id of business customer ``n`` (``CustomerID`` of invoices, ``ID`` of Customer)."""
    return guid("dealpos-customer", n)


def local_text(ts: dt.datetime) -> str:
    """``2025-02-03T11:10:50.57``: tenant-local, no offset, .NET's trimmed 2-digit fraction."""
    loc = ts.astimezone(LOCAL)
    text = loc.isoformat(timespec="seconds")[:19]  # cut the "+07:00"
    cs = loc.microsecond // 10_000
    return text + (f".{cs:02d}".rstrip("0") if cs else "")


def date_text(d: dt.date | None) -> str:
    return f"{d.isoformat()}T00:00:00" if d else NULL_DATE


def local_date(ts: dt.datetime) -> dt.date:
    return ts.astimezone(LOCAL).date()


def local_moment(day: dt.date, centiseconds: int) -> dt.datetime:
    """A UTC instant at ``centiseconds`` after local midnight of ``day``."""
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=LOCAL)
    return (midnight + dt.timedelta(milliseconds=10 * centiseconds)).astimezone(UTC)


# --- outlets, customers, products -----------------------------------------------------------------
@dataclass(frozen=True)
class Outlet:
    code: str
    name: str
    city: str
    opened: dt.date
    closed: dt.date | None = None

    @property
    def id(self) -> str:
        return guid("dealpos-outlet", self.code)

    def created(self) -> dt.datetime:
        return local_moment(self.opened - dt.timedelta(days=14), 10 * 3600 * 100)


OUTLETS = (
    Outlet("OUT01", "Kemang", "Jakarta Selatan", dt.date(2023, 5, 1)),
    Outlet("OUT02", "Kelapa Gading", "Jakarta Utara", dt.date(2023, 8, 15)),
    Outlet("OUT03", "Bandung Dago", "Bandung", dt.date(2024, 2, 1)),
    Outlet("OUT04", "Bekasi", "Bekasi", dt.date(2024, 3, 1), closed=dt.date(2025, 2, 1)),
    Outlet("OUT05", "Surabaya Tunjungan", "Surabaya", dt.date(2024, 6, 1)),
    Outlet("OUT06", "Bali Seminyak", "Badung", dt.date(2025, 3, 1)),
    Outlet("OUT07", "Medan Kota", "Medan", dt.date(2025, 5, 1)),
)
OUTLET_BY_NAME = {o.name.lower(): o for o in OUTLETS}
OUTLET_BY_ID = {o.id: o for o in OUTLETS}


@lru_cache(maxsize=4096)
def active_outlets(day: dt.date) -> tuple[Outlet, ...]:
    """Outlets selling on ``day`` (local date), in a fixed order."""
    return tuple(o for o in OUTLETS if o.opened <= day and (o.closed is None or day < o.closed))


def outlets_existing(as_of: dt.datetime) -> list[Outlet]:
    return [o for o in OUTLETS if o.created() <= as_of]


def render_outlet(o: Outlet, as_of: dt.datetime) -> dict[str, Any]:
    return {"ID": o.id, "Code": o.code, "Name": o.name,
            "Suspended": o.closed is not None and o.closed <= local_date(as_of),
            "Address": f"Jl. {o.name} No. {int(o.code[-2:]) * 7}", "City": o.city,
            "Phone": f"021-55{int(o.code[-2:]):04d}", "Email": f"{o.code.lower()}@store.example.co.id",
            "Created": local_text(o.created())}


def customer_join(n: int) -> dt.datetime:
    r = rng("dealpos-customer-join", n)
    return local_moment(dt.date(2024, 1, 1) + dt.timedelta(days=r.randint(0, 360)), r.randint(0, 8_639_999))


def render_customer(n: int) -> dict[str, Any]:
    name = customer_name(n)
    first, _, last = name.partition(" ")
    r = rng("dealpos-customer", n)
    birth = dt.date(1970 + r.randint(0, 30), r.randint(1, 12), r.randint(1, 28)) if r.random() < 0.4 else None
    return {"ID": customer_id(n), "Code": f"CUST{n:04d}", "Name": name, "FirstName": first,
            "LastName": last, "Email": f"customer{n:03d}@example.co.id", "Mobile": f"0812{n:08d}",
            "Phone": "", "BirthDate": date_text(birth), "JoinDate": local_text(customer_join(n)),
            "ExpiredDate": NULL_DATE, "NationalIDNumber": "", "Address": f"Jl. Pelanggan {n}",
            "City": ("Jakarta", "Bandung", "Surabaya", "Bekasi")[n % 4]}


@dataclass(frozen=True)
class Variant:
    id: str
    code: str
    model: str
    unit_price: Decimal
    weight: int
    taxable: bool
    product_name: str
    product_created: dt.datetime


@dataclass(frozen=True)
class Product:
    id: str
    code: str
    name: str
    category: str
    created: dt.datetime
    discontinued: bool
    variants: tuple[Variant, ...]


N_PRODUCTS = 24
_CATEGORIES = {"Minuman": ("Kopi Arabika Gayo", "Teh Melati", "Susu UHT", "Jus Mangga", "Air Mineral"),
               "Makanan Ringan": ("Keripik Singkong", "Kacang Mete", "Biskuit Kelapa", "Wafer Coklat"),
               "Perawatan": ("Sabun Sereh", "Sampo Lidah Buaya", "Minyak Kayu Putih", "Lulur Bali"),
               "Rumah Tangga": ("Sapu Ijuk", "Ember Lipat", "Rak Piring", "Tikar Pandan"),
               "Fashion": ("Kemeja Batik", "Sarung Tenun", "Kaos Polos", "Topi Anyaman", "Sandal Kulit",
                           "Tas Rotan", "Selendang Songket")}
_MODELS = {"Minuman": ("250 g", "500 g", "1 kg"), "Makanan Ringan": ("Kecil", "Besar"),
           "Perawatan": ("100 ml", "250 ml"), "Rumah Tangga": ("Standar",),
           "Fashion": ("S", "M", "L")}


@lru_cache(maxsize=8)
def catalogue(seed: int) -> tuple[Product, ...]:
    """The tenant's products: most listed during 2024, four added in 2025 (they exist from then on)."""
    names = [(cat, name) for cat, items in _CATEGORIES.items() for name in items][:N_PRODUCTS]
    out = []
    for p, (cat, name) in enumerate(names):
        r = rng(seed, PROVIDER, "product", p)
        if p < N_PRODUCTS - 4:
            created = local_moment(dt.date(2024, 1, 10) + dt.timedelta(days=r.randint(0, 300)),
                                   r.randint(9 * 360_000, 17 * 360_000))
        else:  # new products: 2025-01-20, 2025-02-14, 2025-03-11, 2025-04-05
            created = local_moment(dt.date(2025, 1, 20) + dt.timedelta(days=25 * (p - N_PRODUCTS + 4)),
                                   10 * 360_000)
        pid = guid(seed, "product", p)
        base = 500 * r.randint(20, 900)  # IDR 10 000 .. 450 000, multiples of 500
        taxable = r.random() < 0.7
        variants = []
        for v, model in enumerate(_MODELS[cat]):
            price = Decimal(base + 500 * r.randint(0, 40) * v)
            variants.append(Variant(guid(seed, "variant", p, v), f"SKU-{p + 1:03d}-{v + 1}", model, price,
                                    r.randint(50, 2000), taxable, name, created))
        out.append(Product(pid, f"PRD{p + 1:03d}", name, cat, created, r.random() < 0.08, tuple(variants)))
    return tuple(out)


@lru_cache(maxsize=8)
def _availability(seed: int) -> tuple[list[dt.datetime], list[tuple[Variant, ...]]]:
    """Each distinct product creation time, and the variants (catalogue order) that exist from then on."""
    cat = catalogue(seed)
    times = sorted({p.created for p in cat})
    return times, [tuple(v for p in cat for v in p.variants if p.created <= t) for t in times]


def available_variants(seed: int, at: dt.datetime) -> tuple[Variant, ...]:
    """The variants of products created by ``at``, in catalogue order."""
    times, variants = _availability(seed)
    k = bisect_right(times, at)
    return variants[k - 1] if k else ()


def render_product(p: Product) -> dict[str, Any]:
    return {"ID": p.id, "Code": p.code, "Name": p.name, "Category": p.category, "Released": True,
            "ThumbnailUrl": f"https://cdn.example.co.id/p/{p.code}_t.jpg",
            "ImageUrl": f"https://cdn.example.co.id/p/{p.code}.jpg", "Discontinued": p.discontinued,
            "Created": local_text(p.created),
            "Variants": [{"ID": v.id, "Code": v.code, "Model": v.model, "UnitPrice": v.unit_price,
                          "Discount": 0, "Weight": v.weight, "TypeID": 1, "Discontinued": p.discontinued}
                         for v in p.variants]}


# --- invoices ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Line:
    variant: Variant
    quantity: int
    price: Decimal
    discount_pct: int
    discount_amount: Decimal
    sales: Decimal
    tax: Decimal
    cost: Decimal


@dataclass(frozen=True)
class Payment:
    id: str
    at: dt.datetime
    amount: Decimal
    method: str
    code: str
    note: str


@dataclass(frozen=True)
class ReturnDoc:
    id: str
    number: str
    at: dt.datetime
    line: int
    quantity: int
    amount: Decimal


@dataclass(frozen=True)
class InvoiceFacts:
    """The whole life of one invoice, from which its state at any moment follows."""

    day: dt.date  # local sell date
    index: int
    id: str
    outlet: Outlet
    number: str
    created: dt.datetime
    customer: int
    tag: str
    reference: str
    due: dt.date | None
    lines: tuple[Line, ...]
    total: Decimal
    payments: tuple[Payment, ...]  # every payment it will ever get (refunds negative), by time
    voided_at: dt.datetime | None
    ret: ReturnDoc | None
    shipments: tuple[tuple[dt.datetime, str], ...]  # (when, fulfillment state from then on)

    def state(self, as_of: dt.datetime) -> dict[str, Any]:
        cancelled = self.voided_at is not None and self.voided_at <= as_of
        payments = [p for p in self.payments if p.at <= as_of]
        paid = sum((p.amount for p in payments), ZERO)
        returned = self.ret.amount if self.ret is not None and self.ret.at <= as_of else ZERO
        owed = self.total - returned
        if cancelled or (paid == 0 and owed > 0):
            payment = "Unpaid"
        elif paid >= owed:
            payment = "Paid"
        else:
            payment = "Partial"
        fulfillment = "Unsent"
        for when, value in self.shipments:
            if when <= as_of:
                fulfillment = value
        if returned:
            fulfillment = "Returned"
        return {"status": "Cancelled" if cancelled else "Active", "payment": payment, "paid": paid,
                "returned": returned, "fulfillment": fulfillment, "payments": payments}


def invoice_id(seed: int, day_index: int, i: int) -> str:
    """A GUID whose last group encodes (day, index), so ``Invoice/Detail?ID=`` can find it again."""
    return guid(seed, "invoice", day_index, i)[:24] + f"{day_index:04x}{i:08x}"


def number_of(day: dt.date, k: int) -> str:
    # "YY.MM.NNNNN" like the docs' "20.05.00157"; the counter restarts per outlet and per day.
    return f"{day.year % 100:02d}.{day.month:02d}.{day.day:02d}{k:03d}"


def _split(total: Decimal, k: int) -> list[Decimal]:
    part = money(total / k)
    return [part] * (k - 1) + [total - part * (k - 1)]


def facts(world: World, day: dt.date, i: int) -> InvoiceFacts:
    """Invoice ``i`` of ``day`` (memoised: the returns and payments lists walk the last ``MAX_LAG`` of
    invoices on every call, about 9,000 at world scale 5)."""
    return _cached_facts(world.seed, world.config.lines_per_invoice, day, i)


@lru_cache(maxsize=16_384)
def _cached_facts(seed: int, lines_per_invoice: int | None, day: dt.date, i: int) -> InvoiceFacts:
    # an invoice depends on the seed and the line count only (not on as_of, scale or per_day)
    return _make_facts(World(WorldConfig(seed=seed, lines_per_invoice=lines_per_invoice)), day, i)


def _make_facts(world: World, day: dt.date, i: int) -> InvoiceFacts:
    seed = world.seed
    r = rng(seed, PROVIDER, "invoice", day.isoformat(), i)
    active = active_outlets(day)
    outlet, k = active[i % len(active)], i // len(active) + 1
    number = number_of(day, k)
    iid = invoice_id(seed, world.day_index(day), i)
    created = local_moment(day, r.randint(8 * 360_000, 22 * 360_000 - 1))
    customer = world.customer(r)
    tag = r.choices(TAGS, TAG_WEIGHTS)[0]
    wholesale, marketplace = tag == "Wholesale", tag in ("Tokopedia", "Shopee")
    ymd = f"{day.year:04d}{day.month:02d}{day.day:02d}"  # both references draw their number: same stream
    reference = {"Tokopedia": f"INV/{ymd}/MPL/{r.randint(10**9, 10**10 - 1)}",
                 "Shopee": f"{ymd[2:]}{r.randint(10**7, 10**8 - 1):X}"}.get(tag, "")
    due = day + dt.timedelta(days=30) if wholesale else None

    available = available_variants(seed, created)
    lines = []
    for _ in range(world.config.lines_per_invoice or r.randint(1, 4)):
        v = r.choice(available)
        qty = r.randint(5, 40) if wholesale else r.randint(1, 3)
        pct = r.choice((0, 0, 0, 0, 5, 10))
        gross = v.unit_price * qty
        disc = gross * pct / 100  # exact: prices are multiples of 500
        sales = gross - disc
        tax = money(sales * 11 / 111) if v.taxable else ZERO  # PPN 11% included in the price
        cost = Decimal(100 * int(v.unit_price * Decimal("0.006")))
        lines.append(Line(v, qty, v.unit_price, pct, disc, sales, tax, cost))
    total = sum((ln.sales for ln in lines), ZERO)

    voided_at = None
    if r.random() < VOID_RATE[tag]:
        hours = {"Offline": (0, 0), "Wholesale": (1, 48)}.get(tag, (1, 24))
        voided_at = created + dt.timedelta(hours=r.randint(*hours), minutes=r.randint(1, 30))
    ship: list[tuple[dt.datetime, str]] = []
    payments: list[tuple[dt.datetime, Decimal, str]] = []
    ret = None
    if voided_at is None:
        if tag == "Offline":
            ship = [(created, "Sent")]
            payments = [(created + dt.timedelta(seconds=r.randint(5, 120)), total, r.choice(TILL_METHODS))]
        elif marketplace:
            ship = [(created + dt.timedelta(hours=r.randint(2, 36)), "Sent")]
            payments = [(created + dt.timedelta(days=r.randint(3, 10), seconds=r.randint(0, 86_399)),
                         total, f"{tag} Settlement")]
        else:
            first = created + dt.timedelta(hours=r.randint(2, 48))
            ship = ([(first, "Partial"), (first + dt.timedelta(days=r.randint(1, 3)), "Sent")]
                    if len(lines) >= 3 else [(first, "Sent")])
            u = r.random()
            if u < 0.20:
                pass  # never paid: overdue after 30 days
            elif u < 0.35:
                share = Decimal(r.randint(20, 70)) / 100
                payments = [(created + dt.timedelta(days=r.randint(5, 45), seconds=r.randint(0, 86_399)),
                             money(total * share), r.choice(TRANSFER_METHODS))]
            else:
                n = r.randint(1, 3)
                days = sorted(r.sample(range(5, 61), n))
                payments = [(created + dt.timedelta(days=d, seconds=r.randint(0, 86_399)), amount,
                             r.choice(TRANSFER_METHODS)) for d, amount in zip(days, _split(total, n), strict=True)]
        if r.random() < RETURN_RATE and total > 0:
            j = r.randrange(len(lines))
            q = r.randint(1, lines[j].quantity)
            at = created + dt.timedelta(days=r.randint(1, 14), seconds=r.randint(0, 86_399))
            ret = ReturnDoc(guid(seed, "return", iid), f"RT{number}", at, j, q,
                            money(lines[j].sales * q / lines[j].quantity))
    return InvoiceFacts(day, i, iid, outlet, number, created, customer, tag, reference, due, tuple(lines),
                        total, _settle(seed, iid, outlet, number, payments, ret, total), voided_at, ret,
                        tuple(ship))


def _settle(seed: int, iid: str, outlet: Outlet, number: str, plan: list[tuple[dt.datetime, Decimal, str]],
            ret: ReturnDoc | None, total: Decimal) -> tuple[Payment, ...]:
    """Apply a return to the payment plan: never collect more than is owed; refund any excess at once."""
    events: list[tuple[dt.datetime, Decimal, str, str]] = []
    paid = ZERO
    owed = total
    refunded = ret is None
    for at, amount, method in sorted(plan):
        if not refunded and ret is not None and ret.at < at:
            owed = total - ret.amount
            refunded = True
            if paid > owed:
                events.append((ret.at + dt.timedelta(minutes=1), owed - paid, "Cash", f"Refund {ret.number}"))
                paid = owed
        amount = min(amount, owed - paid)
        if amount > 0:
            events.append((at, amount, method, ""))
            paid += amount
    if not refunded and ret is not None and paid > total - ret.amount:
        events.append((ret.at + dt.timedelta(minutes=1), total - ret.amount - paid, "Cash",
                       f"Refund {ret.number}"))
    return tuple(Payment(guid(seed, "payment", iid, j), at, amount, method, f"{outlet.code}/{number}/{j + 1}",
                         note) for j, (at, amount, method, note) in enumerate(events))


def day_and_index(invoice_guid: str) -> tuple[dt.date, int] | None:
    tail = invoice_guid[-12:]
    if not re.fullmatch(r"[0-9a-f]{12}", tail or ""):
        return None
    return EPOCH + dt.timedelta(days=int(tail[:4], 16)), int(tail[4:], 16)


def find_invoice(world: World, *, iid: str | None = None, number: str | None = None,
                 outlet: Outlet | None = None) -> InvoiceFacts | None:
    """An existing invoice by ID, or by Number within an outlet (numbers repeat across outlets)."""
    if iid:
        di = day_and_index(iid.lower())
        if di is None:
            return None
        day, i = di
    else:
        m = re.fullmatch(r"(\d\d)\.(\d\d)\.(\d\d)(\d{3,})", number or "")
        if not m or outlet is None:
            return None
        try:
            day = dt.date(2000 + int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            return None
        active = active_outlets(day)
        if outlet not in active:
            return None
        i = (int(m.group(4)) - 1) * len(active) + active.index(outlet)
    if day < EPOCH or i >= world.daily_count(PROVIDER, day, BASE_PER_DAY):
        return None
    f = facts(world, day, i)
    if f.created > world.as_of or (iid and f.id != iid.lower()):
        return None
    return f


def iter_invoices(world: World, first: dt.date, last: dt.date):
    """Invoices that exist as of ``world.as_of`` with a local sell date in [first, last]."""
    as_of = world.as_of
    for day in world.days(first, last + dt.timedelta(days=1)):
        for i in range(world.daily_count(PROVIDER, day, BASE_PER_DAY)):
            f = facts(world, day, i)
            if f.created <= as_of:
                yield f


def header(f: InvoiceFacts, st: dict[str, Any]) -> dict[str, Any]:
    return {"ID": f.id, "Outlet": f.outlet.name, "Number": f.number, "ReferenceNumber": f.reference,
            "CustomerID": customer_id(f.customer), "Customer": customer_name(f.customer),
            "Date": date_text(f.day), "Due": date_text(f.due), "Amount": f.total,
            "ReturnAmount": st["returned"], "Payment": st["payment"], "Status": st["status"],
            "Fulfillment": st["fulfillment"], "Tag": f.tag, "Created": local_text(f.created)}


def render_line(ln: Line, quantity: int | None = None, sales: Decimal | None = None) -> dict[str, Any]:
    v = ln.variant
    return {"VariantID": v.id, "Name": f"{v.product_name} {v.model}", "Code": v.code,
            "Quantity": ln.quantity if quantity is None else quantity, "UnitQuantity": 1, "Cost": ln.cost,
            "Price": ln.price, "PriceOriginal": v.unit_price, "Discount": ln.discount_pct,
            "DiscountAmount": ln.discount_amount if quantity is None else money(ln.discount_amount * quantity
                                                                                / ln.quantity),
            "Taxable": v.taxable, "LoyaltyPoint": False, "Expense": 0,
            "Sales": ln.sales if sales is None else sales,
            "Tax": ln.tax if sales is None else (money(sales * 11 / 111) if v.taxable else ZERO),
            "Commission": 0, "SalesName": "", "Note": ""}


def render_payment(p: Payment) -> dict[str, Any]:
    return {"ID": p.id, "Date": local_text(p.at), "Amount": p.amount, "Method": p.method, "Code": p.code,
            "Note": p.note}


def render_return(f: InvoiceFacts) -> dict[str, Any]:
    ret = f.ret
    assert ret is not None
    ln = f.lines[ret.line]
    return {"ID": ret.id, "Outlet": f.outlet.name, "Number": ret.number, "ReferenceNumber": f.number,
            "InvoiceID": f.id, "CustomerID": customer_id(f.customer), "Customer": customer_name(f.customer),
            "Date": date_text(local_date(ret.at)), "Amount": ret.amount, "Status": "Active", "Tag": f.tag,
            "Created": local_text(ret.at), "Variants": [render_line(ln, ret.quantity, ret.amount)]}


def render_detail(f: InvoiceFacts, st: dict[str, Any]) -> dict[str, Any]:
    gross = sum((ln.price * ln.quantity for ln in f.lines), ZERO)
    discount = sum((ln.discount_amount for ln in f.lines), ZERO)
    tax = sum((ln.tax for ln in f.lines), ZERO)
    c = render_customer(f.customer)
    return {"ID": f.id, "Outlet": f.outlet.name, "Number": f.number, "ReferenceNumber": f.reference,
            "Date": date_text(f.day), "DueDate": date_text(f.due), "Tag": f.tag, "SalesPerson": "",
            "Customer": {k: c[k] for k in ("Code", "Email", "Mobile", "Name", "Phone")},
            "CreatorID": guid("dealpos-user", f.outlet.code), "Created": local_text(f.created),
            "Discount1": 0, "Discount2": 0, "DiscountAmount": 0, "Gross": gross, "DiscountTotal": discount,
            "TaxType": "Include" if tax else "No Tax", "Tax": tax, "TaxRate": 11 if tax else 0,
            "Sales": f.total, "Surcharge": 0, "SalesNTax": f.total, "Coupon": "", "Note": "",
            "PointUsed": 0, "PointsEarned": 0, "Fulfillment": st["fulfillment"], "Payment": st["payment"],
            "Status": st["status"], "ReturnAmount": st["returned"],
            "Variants": [render_line(ln) for ln in f.lines],
            "Payments": [render_payment(p) for p in st["payments"]]}


# --- ground truth ----------------------------------------------------------------------------------
def local_range(world: World, start: dt.datetime | None, end: dt.datetime | None) -> tuple[dt.date, dt.date]:
    """The provider-local dates a run for [start, end) asks for: start.date() .. (end - 1 day).date()."""
    first = start.date() if start else EPOCH
    last = (end - dt.timedelta(days=1)).date() if end else local_date(world.as_of)
    return first, last


def truth(world: World, start: dt.datetime | None = None, end: dt.datetime | None = None) -> dict[str, Any]:
    """Exactly what a full extraction of every stream for [start, end) yields (after de-duplication)."""
    as_of = world.as_of
    first, last = local_range(world, start, end)
    counts = dict.fromkeys(STREAMS, 0)
    sums = {"invoices": {"Amount": ZERO, "ReturnAmount": ZERO}, "returns": {"Amount": ZERO},
            "payments_received": {"Amount": ZERO}}
    nested = {"invoice_lines": 0, "invoice_payments": 0, "cancelled_invoices": 0}
    receivables: dict[tuple[str, str], dict[str, Decimal]] = {}
    for f in iter_invoices(world, first - MAX_LAG, last):
        st = f.state(as_of)
        if first <= f.day <= last:
            counts["invoices"] += 1
            sums["invoices"]["Amount"] += f.total
            sums["invoices"]["ReturnAmount"] += st["returned"]
            nested["invoice_lines"] += len(f.lines)
            nested["invoice_payments"] += len(st["payments"])
            if st["status"] == "Cancelled":
                nested["cancelled_invoices"] += 1
            else:
                c = receivables.setdefault((f"C{f.customer:03d}", CURRENCY),
                                           {"invoiced": ZERO, "paid": ZERO, "open": ZERO})
                c["invoiced"] += f.total
                c["paid"] += st["paid"]
                c["open"] += f.total - st["paid"] - st["returned"]
        if f.ret is not None and f.ret.at <= as_of and first <= local_date(f.ret.at) <= last:
            counts["returns"] += 1
            sums["returns"]["Amount"] += f.ret.amount
        for p in st["payments"]:
            if first <= local_date(p.at) <= last:
                counts["payments_received"] += 1
                sums["payments_received"]["Amount"] += p.amount
    counts["outlets"] = len(outlets_existing(as_of))
    counts["customers"] = sum(1 for n in range(1, World.N_CUSTOMERS + 1) if customer_join(n) <= as_of)
    counts["products"] = sum(1 for p in catalogue(world.seed) if p.created <= as_of)
    return {"provider": PROVIDER, "counts": counts, "sums": sums, "receivables": receivables,
            "nested": nested}


# --- HTTP --------------------------------------------------------------------------------------------
class DecimalJSON(Response):
    """JSON whose money is exact number text (``125000``, ``33333.33``), never a float; non-ASCII
    characters escaped (``\\u00e9``)."""

    media_type = "application/json; charset=utf-8"

    def render(self, content: Any) -> bytes:
        return dumps(content, decimal=trimmed_number, ensure_ascii=True, allow_nan=True)


def message(text: str, status: int) -> JSONResponse:
    return JSONResponse({"Message": text}, status)


class BadRequest(ValueError):
    pass


def _date_param(p: dict[str, Any], name: str) -> dt.date | None:
    value = p.get(name.lower())
    if value in (None, ""):
        return None
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise BadRequest(f"Invalid {name} date '{value}', expected format yyyy-mm-dd") from None


def _int_param(p: dict[str, Any], name: str, default: int) -> int:
    value = p.get(name.lower(), default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"The value '{value}' is not valid for {name}.") from None


def _list_param(p: dict[str, Any], name: str) -> list[str]:
    value = p.get(name.lower())
    if value in (None, "", []):
        return []
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def _window(p: dict[str, Any]) -> tuple[dt.date, dt.date]:
    first, last = _date_param(p, "From"), _date_param(p, "To")
    if first is None or last is None:
        raise BadRequest("From and To are required (format yyyy-mm-dd)")
    return first, last


def _paging(p: dict[str, Any]) -> tuple[int, int]:
    number, size = _int_param(p, "PageNumber", 1), _int_param(p, "PageSize", 20)
    if number < 1:
        raise BadRequest("PageNumber must be 1 or greater")
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise BadRequest(f"PageSize must be between 1 and {MAX_PAGE_SIZE}")
    return number, size




def make_app(state) -> FastAPI:
    """The DealPOS app; ``state`` is the shared SimState (world, faults, credentials, tokens)."""
    app = FastAPI(title="DealPOS API 3.1.0 simulator")
    cache = QueryCache()
    api = "/api/v3"

    def faults():
        return state.faults[PROVIDER]

    async def read(request: Request) -> dict[str, Any] | JSONResponse:
        """Auth, then query string + JSON body as one case-insensitive parameter set."""
        raw = await request.body()
        ctype = request.headers.get("content-type", "")
        if request.method == "GET" and not raw and ctype.startswith("application/json"):
            # [CODE] "DealPOS's model binding 500s on bodyless GETs that declare application/json".
            return message("An error has occurred.", 500)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or state.tokens[PROVIDER].check(token.strip()) != "ok":
            return message("Authorization has been denied for this request.", 401)
        params: dict[str, Any] = {}
        for k, v in request.query_params.multi_items():
            key = k.lower().removesuffix("[]")  # Outlet=a&Outlet=b or Outlet[]=a: a list
            if key in params:
                prev = params[key]
                params[key] = [*prev, v] if isinstance(prev, list) else [prev, v]
            else:
                params[key] = v
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                return message("The request is invalid.", 400)
            if not isinstance(body, dict):
                return message("The request is invalid.", 400)
            params.update({k.lower(): v for k, v in body.items()})
        return params

    def page_of(keys: list, number: int, size: int) -> list:
        lo = (number - 1) * size
        f = faults()
        if f.drift and number > 1:
            lo -= 1  # a record was inserted ahead of this page while the client paged: one repeats
        chunk = keys[lo: lo + size]
        if f.duplicates and number > 1 and chunk and lo >= 1:
            chunk = [keys[lo - 1], *chunk]  # the previous page's last record again
        return chunk

    def invoice_keys(p: dict[str, Any]) -> list[tuple[dt.date, int]]:
        first, last = _window(p)
        status = str(p.get("status") or "Active").lower()
        if status not in ("active", "cancelled", "any"):
            raise BadRequest("Status must be one of Active, Cancelled, Any")
        outlets = {o.lower() for o in _list_param(p, "Outlet")}
        tags = {t.lower() for t in _list_param(p, "Tag")}
        pay_state = str(p.get("paymentstate") or "").lower()
        fulfil = str(p.get("fulfillment") or p.get("deliverystate") or "").lower()
        if str(p.get("bin", "false")).lower() == "true":
            return []  # erased invoices: this tenant has none
        world = state.world

        def compute():
            out = []
            for f in iter_invoices(world, first, last):
                if outlets and f.outlet.name.lower() not in outlets or tags and f.tag.lower() not in tags:
                    continue
                st = f.state(world.as_of)
                if status != "any" and st["status"].lower() != status:
                    continue
                if pay_state and st["payment"].lower() != pay_state:
                    continue
                if fulfil and st["fulfillment"].lower() != fulfil:
                    continue
                out.append((f.day, f.index))
            return out

        key = ("inv", world.config.seed, world.config.scale, world.config.lines_per_invoice,
               str(world.config.per_day), world.as_of, first, last, status, frozenset(outlets),
               frozenset(tags), pay_state, fulfil)
        return cache.get(key, compute)

    def invoice_rows(keys: list, lines: bool, payments: bool) -> list[dict[str, Any]]:
        world = state.world
        rows = []
        for day, i in keys:
            f = facts(world, day, i)
            st = f.state(world.as_of)
            row = header(f, st)
            if lines:
                row["Variants"] = [render_line(ln) for ln in f.lines]
            if payments:
                row["Payments"] = [render_payment(pay) for pay in st["payments"]]
            rows.append(row)
        return rows

    def guarded(handler):
        async def endpoint(request: Request):
            p = await read(request)
            if isinstance(p, Response):
                return p
            try:
                return handler(request, p)
            except BadRequest as exc:
                return message(str(exc), 400)
        endpoint.__name__ = handler.__name__
        return endpoint

    def route(path: str, methods: tuple[str, ...] = ("GET", "POST")):
        def deco(handler):
            app.add_api_route(api + path, guarded(handler), methods=list(methods))
            return handler
        return deco

    @app.post(api + "/Token/OAuth2")
    async def token(request: Request):
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return message("The request is invalid.", 400)
        cid = body.get("client_id") if isinstance(body, dict) else None
        secret = body.get("client_secret") if isinstance(body, dict) else None
        if not cid or not secret:
            return message("client_id and client_secret are required", 400)
        if not re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", str(secret)):
            return message("client_secret must be a GUID", 400)  # [CODE] "Secret must be a GUID"
        creds = state.credentials[PROVIDER]
        if cid != creds["client_id"] or secret != creds["client_secret"]:
            return message("Invalid client_id or client_secret", 401)
        ttl = faults().token_ttl  # the fault: tokens die earlier than the expires_in they announce
        tok = state.tokens[PROVIDER].issue("dp", float(ttl) if ttl is not None else TOKEN_LIFETIME)
        expires = dt.datetime.now(UTC) + dt.timedelta(seconds=TOKEN_LIFETIME)
        return {"access_token": tok, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME,
                "expiredat": local_text(expires)}

    @route("/Invoice/MultipleOutlet")
    def invoice_multiple_outlet(request: Request, p: dict[str, Any]):
        number, size = _paging(p)
        return DecimalJSON(invoice_rows(page_of(invoice_keys(p), number, size), False, False))

    @route("/Invoice/MultipleOutlet/WithVariant")
    def invoice_with_variant(request: Request, p: dict[str, Any]):
        number, size = _paging(p)
        # [CODE] payments only with the request header "IncludePayments: true".
        with_payments = request.headers.get("includepayments", "").lower() == "true"
        return DecimalJSON(invoice_rows(page_of(invoice_keys(p), number, size), True, with_payments))

    @route("/Invoice/MultipleOutlet/WithTotalCount")
    def invoice_with_total_count(request: Request, p: dict[str, Any]):
        number, size = _paging(p)
        keys = invoice_keys(p)
        return DecimalJSON({"Data": invoice_rows(page_of(keys, number, size), False, False),
                            "TotalCount": len(keys)})

    @route("/Invoice/GetCountMultipleOutlet")
    def invoice_count(request: Request, p: dict[str, Any]):
        return DecimalJSON(len(invoice_keys(p)))

    @route("/Invoice/Return")
    def invoice_return(request: Request, p: dict[str, Any]):
        first, last = _window(p)
        number, size = _paging(p)
        world = state.world

        def compute():
            found = [(f.ret.at, f.day, f.index) for f in iter_invoices(world, first - MAX_LAG, last)
                     if f.ret is not None and f.ret.at <= world.as_of
                     and first <= local_date(f.ret.at) <= last]
            return [(d, i) for _, d, i in sorted(found)]

        keys = cache.get(("ret", world.config.seed, world.config.scale, world.config.lines_per_invoice,
                          str(world.config.per_day), world.as_of, first, last), compute)
        return DecimalJSON([render_return(facts(world, d, i)) for d, i in page_of(keys, number, size)])

    def _outlet(p: dict[str, Any]) -> Outlet | None:
        if p.get("outletid"):
            return OUTLET_BY_ID.get(str(p["outletid"]).lower())
        return OUTLET_BY_NAME.get(str(p.get("outlet", "")).lower())

    @route("/Invoice/Detail", ("GET",))
    def invoice_detail(request: Request, p: dict[str, Any]):
        world = state.world
        if p.get("id"):
            f = find_invoice(world, iid=str(p["id"]))
        elif p.get("number"):
            f = find_invoice(world, number=str(p["number"]), outlet=_outlet(p))
        else:
            raise BadRequest("ID, or Number with Outlet or OutletID, is required")
        if f is None:
            return message("Invoice not found", 404)
        return DecimalJSON(render_detail(f, f.state(world.as_of)))

    @route("/Invoice/IDByNumber")
    def invoice_id_by_number(request: Request, p: dict[str, Any]):
        if not p.get("number"):
            raise BadRequest("Number is required")
        f = find_invoice(state.world, number=str(p["number"]), outlet=_outlet(p))
        if f is None:
            return message("Invoice not found", 404)
        return json_response({"ID": f.id})

    def payments_by_outlet(first: dt.date, last: dt.date) -> list[dict[str, Any]]:
        world = state.world
        groups: dict[str, list[tuple[dt.datetime, dict[str, Any]]]] = {}
        for f in iter_invoices(world, first - MAX_LAG, last):
            for pay in f.state(world.as_of)["payments"]:
                if first <= local_date(pay.at) <= last:
                    item = {"ID": pay.id, "InvoiceID": f.id, "Invoice": f.number,
                            "Customer": customer_name(f.customer), **render_payment(pay)}
                    groups.setdefault(f.outlet.name, []).append((pay.at, item))
        return [{"Outlet": o.name, "Payments": [item for _, item in sorted(groups[o.name], key=lambda x: x[0])]}
                for o in OUTLETS if o.name in groups]

    @route("/Payment/Invoice", ("GET",))
    def payment_invoice(request: Request, p: dict[str, Any]):
        first, last = _window(p)
        return DecimalJSON(payments_by_outlet(first, last))

    @route("/Payment/Invoice/p", ("POST",))
    def payment_invoice_post(request: Request, p: dict[str, Any]):
        first, last = _window(p)
        return DecimalJSON(payments_by_outlet(first, last))

    @route("/Payment/Invoice", ("POST",))
    def payment_add(request: Request, p: dict[str, Any]):
        # POST Payment/Invoice *adds* a payment [DOC]: a read body lacks the invoice to pay.
        raise BadRequest("Invoice Number and Outlet are required to add a payment")

    @route("/Payment/Invoice/Detail/ID", ("GET",))
    def payment_detail(request: Request, p: dict[str, Any]):
        f = find_invoice(state.world, iid=str(p.get("id") or ""))
        if f is None:
            return message("Invoice not found", 404)
        return DecimalJSON([render_payment(pay) for pay in f.state(state.world.as_of)["payments"]])

    @route("/Outlet", ("GET",))
    def outlet_list(request: Request, p: dict[str, Any]):
        as_of = state.world.as_of
        rows = [render_outlet(o, as_of) for o in outlets_existing(as_of)]
        suspended = str(p.get("suspended", "")).lower()
        if suspended in ("true", "false"):
            rows = [r for r in rows if r["Suspended"] == (suspended == "true")]
        return json_response(rows)

    @route("/Customer", ("GET",))
    def customer_list(request: Request, p: dict[str, Any]):
        number, size = _paging(p)
        as_of = state.world.as_of
        keys = [n for n in range(1, World.N_CUSTOMERS + 1) if customer_join(n) <= as_of]
        return json_response([render_customer(n) for n in page_of(keys, number, size)])

    @route("/Product", ("GET",))
    def product_list(request: Request, p: dict[str, Any]):
        number, size = _paging(p)
        world = state.world
        keys = [prod for prod in catalogue(world.seed) if prod.created <= world.as_of]
        return DecimalJSON({"DataArray": [render_product(prod) for prod in page_of(keys, number, size)]})

    return app
