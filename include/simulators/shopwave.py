"""Shopwave / merchantstack simulator (seed 002, providers.md section 3): supplier invoices to merchant
stores, plus the merchant's consumer sales (baskets, transactions, orders), stores and products.

The contract, as the seed and the public docs describe it ([SEED] seed 002, [DOC] developer guide):

* Auth: ``POST /oauth/token`` (the real host is ``secure.merchantstack.com``) with ``grant_type=
  refresh_token``, ``client_id``, ``client_secret``, ``refresh_token`` (form or JSON body) gives
  ``{access_token, token_type: "Bearer", expires_in, refresh_token, scope}``. The refresh token is not
  rotated (the same one comes back) [INF]. Errors follow RFC 6749 section 5.2 (``invalid_request``,
  ``invalid_client`` 401, ``invalid_grant``, ``unsupported_grant_type``) [INF: the token host is a
  separate OAuth server]. Data calls send ``Authorization: {token_type} {access_token}``: a header
  that is missing or not of that form is 911, an unknown or expired token is 908 (HTTP 401, "Token
  expired or invalid. Please renew your token") [SEED].
* ``x-accept-version`` is required here (913, HTTP 400, when missing) -- the old docs call it
  recommended, the new guide says "always send x-accept-version: 2.0". ``1``/``1.0`` are still served,
  with warning 604 "Newer Version Available" in ``api.message.warning``.
* Read endpoints: ``GET /invoice`` (headers ``invoiceId``, ``storeIds``), ``/order`` (``orderIds``,
  ``storeIds``, ``completed``), ``/basket`` (``basketIds``, ``storeIds``), ``/transaction``
  (``transactionIds``, ``basketIds`` [INF]), ``/store`` (``storeIds``), ``/supplier/store``
  (``supplierIds``), ``/product`` (``productIds``, ``categoryIds``), ``/status``. No pagination: every
  list is the full result set ([DOC pagination.html]); filters are request headers, never query
  strings; collections are maps keyed by id (``{"invoices": {"123": {...}}, "api": {...}}``).
  A store id the merchant does not own in ``storeIds`` is 912 (HTTP 403); a filter that is not a
  comma-separated list of ids is 913.
* ``GET /report`` with the SWQL ``query`` header, e.g. ``{"0":{"FROM":"Basket","WHERE":{"AND":[
  "Basket.completeDate >= '2025-03-01 00:00:00'","Basket.completeDate < '2025-03-02 00:00:00'"]}}}``:
  ``FROM`` Basket or Transaction, ``WHERE`` an ``AND`` list of ``<Entity>.<field> <op> '<value>'``
  (ops ``> >= < <= =``; fields ``completeDate``, ``addedDate`` (Basket), ``id``, ``storeId``,
  ``basketId``), optional ``SELECT`` (``"Basket.id AS id, Basket.completeDate AS date"``). The answer is
  ``{"report": {"0": {"keys": [...], "data": [[...], ...]}}, "api": {...}}``: ``data`` holds arrays
  only ([DOC report/GET]); only completed records are reported. ``GROUP`` is not simulated (913).
* Money: prices and invoice totals are strings in minor units (``"1600.0"`` = 16.00 GBP), transaction
  ``amount``/``tip`` are integer pence, product ``taxPercentage`` is a fraction string (``"0.200"``),
  invoice item ``vatPercentage`` is a Float fraction (``0.2``) [INF: the seed says Float, not its
  scale]. Dates are ISO UTC with milliseconds and ``Z``.
* Errors use the documented envelope ``{"error": {code, message, details[]}, "api": {"message":
  {"error": {"<id>": {id, code, statusCode, title, details}}}, "codeBaseVersion", ...}}`` with the
  seed's ids and titles (908, 911, 912, 913, 919, 899).

The business (GBP): six suppliers invoice the merchant's 40 stores (a store is the world's business
customer n, ``storeId = 1000 + n``); an invoice is entered (``addedDate``) up to three days after the
supplier's invoice date (``completeDate``, "Supplier Invoice Date" [SEED]) and never changes. The
stores sell to consumers: a basket is completed with one or two transactions (CASH/CARD/...); about 4%
are refunded days later by a negative transaction on the same basket; a quarter of the baskets generate
an order (collection/delivery) that is completed hours later. Products get a price rise as a new
price instance.

Receivables rule (what ``truth()["receivables"]`` holds and the marts must reproduce from staging):
Shopwave invoices have no status, no cancellation and **no payment history** (supplier invoices are
not paid through Shopwave; basket transactions are consumer payments with no invoice link). So per
business customer (the invoiced store) and GBP: ``invoiced`` = sum of ``totalIncVat`` / 100 of every
invoice GET /invoice returns, ``paid`` = 0, ``open`` = ``invoiced``.

Faults honoured by this app (the generic ones are in faults.py): ``token_ttl`` makes access tokens die
after that many seconds although ``expires_in`` still announces an hour (a server-side expiry: the
client sees 908); ``duplicates`` repeats every tenth row of a report's ``data`` (arrays can repeat a
record, id-keyed maps cannot); ``drift`` returns report rows newest first instead of in id order (no
pages exist to drift across). :func:`inject_api_errors` (tests) makes the next data responses partial
with an ``api.message.error`` entry, as the docs warn can happen with HTTP 200.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from simulators.jsonbody import (
    MEMO_BYTES,
    BytesMemo,
    RecordKey,
    dumps,
    json_response,
    pinned_world,
    records,
    splice,
)
from simulators.world import EPOCH, UTC, World, customer_name, rng, ts_in_day

PROVIDER = "shopwave"
CURRENCY = "GBP"
API_VERSION = "2.0"
TOKEN_TTL = 3600  # what expires_in announces (the docs do not give the lifetime [INF])
BASE_INVOICES_PER_DAY = 8
BASE_BASKETS_PER_DAY = 30
REFUND_LAG_DAYS = 10  # refunds happen at most this many days after the sale
N_PRODUCTS = 50
MERCHANT_ID = 4201
ID_SPACING = 100_000  # ids are day_index * ID_SPACING + i + 1: at most 99,999 documents a day
CREDENTIALS = {  # demo credentials of the simulator only
    "client_id": "shopwave-sim-client",
    "client_secret": "shopwave-sim-secret",
    "refresh_token": "shopwave-sim-refresh-token",
}

SUPPLIERS = (
    (301, "Thames Valley Foods", "Reading", "RG1 1AA"),
    (302, "Northern Dairy Co", "Leeds", "LS1 4AP"),
    (303, "Cotswold Bakery Supplies", "Cheltenham", "GL50 1AA"),
    (304, "Clyde Beverages", "Glasgow", "G1 1XQ"),
    (305, "Severn Packaging", "Bristol", "BS1 4DJ"),
    (306, "Pennine Fresh Produce", "Manchester", "M1 1AE"),
)
CITIES = (("London", "EC1A 1BB", 51.5074, -0.1278), ("Birmingham", "B1 1AA", 52.4862, -1.8904),
          ("Manchester", "M2 5DB", 53.4808, -2.2426), ("Leeds", "LS2 7EY", 53.8008, -1.5491),
          ("Bristol", "BS1 5TR", 51.4545, -2.5879), ("Edinburgh", "EH1 1YZ", 55.9533, -3.1883),
          ("Cardiff", "CF10 1EP", 51.4816, -3.1791), ("York", "YO1 7HH", 53.9590, -1.0815))
PRODUCT_WORDS = (("Classic", "Smoked", "Spiced", "Organic", "Farmhouse"),
                 ("Beef Burger", "Oat Milk", "Sourdough Loaf", "Cold Brew", "Cheddar", "Apple Juice",
                  "Granola", "Flat White Beans", "Veggie Wrap", "Lemonade"))
TAX_FRACTIONS = ("0.200", "0.050", "0.000")  # UK standard, reduced, zero rate
TENDERS = ("CARD", "CASH", "APP", "VOUCHER", "CHEQUE")  # the documented transaction types
TENDER_WEIGHTS = (0.6, 0.25, 0.1, 0.04, 0.01)

# The seed's error table (ids, HTTP codes, titles and details verbatim; machine codes are [INF]).
ERRORS: dict[int, tuple[int, str, str, str]] = {
    904: (401, "accessDenied", "Access Denied", "Access denied for the request"),
    908: (401, "expiredToken", "Expired Token", "Token expired or invalid. Please renew your token"),
    911: (401, "authorizationHeaderInvalid", "Authorization Header Invalid",
          "The authorization header is invalid. The correct format is Authorization: {token_type} "
          "{accessToken}"),
    912: (403, "resourceNotAllowed", "Resource Not Allowed For Specified User",
          "The user does not own this resource and its forbidden"),
    913: (400, "requiredParameterMissing", "Required parameter or object missing in request",
          "One or more of the required parameters or object formation is missing in your request. "
          "Please refer the documentation"),
    919: (429, "tooManyRequests", "Cannot handle too many request",
          "There is a limit for every object you can send to our server and you are exceding that."),
    899: (500, "unknownError", "Unknown Error", "Something went wrong. Please contact the site administrator"),
}
SUCCESS_TOKEN_VALID = {"202": {"id": 202, "code": "tokenValid", "statusCode": 200, "title": "Token is valid",
                               "details": "Token is validated and found valid."}}
WARNING_OLD_VERSION = {"604": {"id": 604, "code": "newerVersionAvailable", "statusCode": 200,
                               "title": "Newer Version Available",
                               "details": "We detected that you are using older version of API. Please "
                                          "switch to a latest version."}}


# --- ids and formats ---------------------------------------------------------------------------------
def store_id(n: int) -> int:
    return 1000 + n


def customer_id(n: int) -> str:
    """Business customer ``n`` as it appears in ``stg_shopwave__invoices.customer_id`` (the store)."""
    return str(store_id(n))


def supplier_store_id(supplier_id: int) -> int:
    return 9000 + supplier_id % 100


def _ms(ts: dt.datetime) -> dt.datetime:
    """Shopwave timestamps carry milliseconds: facts are kept at that precision so filters are exact."""
    return ts.replace(microsecond=ts.microsecond // 1000 * 1000)


def _iso(ts: dt.datetime | None) -> str | None:
    if ts is None:
        return None
    # "2025-01-02T03:04:05.678+00:00" (milliseconds truncated, like microsecond // 1000) -> "...678Z"
    return ts.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _minor(pence: int) -> str:
    """Minor units as the API writes them: ``"1600.0"`` is 16.00 GBP [DOC guide, product example]."""
    return f"{pence}.0"


def _gbp(pence: int | Decimal) -> Decimal:
    return (Decimal(pence) / 100).quantize(Decimal("0.01"))


@lru_cache(maxsize=65_536)
def _vat_pence(net_pence: int, fraction: str) -> int:
    """VAT of one line in whole pence, half up (the invoice's totalVat is the sum of these)."""
    return int((Decimal(net_pence) * Decimal(fraction)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


# --- the catalogue -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Product:
    k: int
    id: int
    name: str
    barcode: str
    category_id: int
    tax: str
    # (instance id, retail price in pence incl. VAT, active from); a later instance is a price rise
    instances: tuple[tuple[int, int, dt.datetime], ...]

    def price_at(self, ts: dt.datetime) -> int:
        price = self.instances[0][1]
        for _iid, p, active in self.instances:
            if active <= ts:
                price = p
        return price


@lru_cache(maxsize=4096)
def product(seed: int, k: int) -> Product:
    r = rng(seed, PROVIDER, "product", k)
    name = f"{r.choice(PRODUCT_WORDS[0])} {r.choice(PRODUCT_WORDS[1])} {k + 1:02d}"
    first = _ms(dt.datetime(2024, 11, 1, 9, tzinfo=UTC) + dt.timedelta(days=3 * k, seconds=r.randint(0, 3599)))
    price = r.randint(30, 800) * 5
    instances = [(531_000 + (k + 1) * 10 + 1, price, first)]
    if k % 4 == 0:  # a price rise: a new instance with a later activeDate
        instances.append((531_000 + (k + 1) * 10 + 2, int(price * 1.1), first + dt.timedelta(days=45)))
    return Product(k, 135_000 + k + 1, name, f"50{r.randint(10**10, 10**11 - 1)}", 10 + k % 5,
                   r.choices(TAX_FRACTIONS, (0.7, 0.1, 0.2))[0], tuple(instances))


def products_at(world: World, ts: dt.datetime) -> list[Product]:
    """Products whose first price instance is active at ``ts`` (the catalogue grows over time)."""
    return [p for k in range(N_PRODUCTS) if (p := product(world.seed, k)).instances[0][2] <= ts]


def render_product(p: Product, as_of: dt.datetime) -> dict[str, Any]:
    return {
        "id": p.id, "name": p.name, "barcode": p.barcode,
        "details": f"{p.name}, sold by the unit.", "categoryId": p.category_id,
        "addedDate": _iso(p.instances[0][2]),
        "instances": {str(iid): {"id": iid, "price": _minor(price), "taxPercentage": p.tax,
                                 "activeDate": _iso(active)}
                      for iid, price, active in p.instances if active <= as_of},
    }


# --- stores ------------------------------------------------------------------------------------------
def render_store(n: int) -> dict[str, Any]:
    city, postcode, lat, lng = CITIES[n % len(CITIES)]
    return {"id": store_id(n), "merchantId": MERCHANT_ID, "name": customer_name(n),
            "addressLine1": f"{n} High Street", "addressLine2": None, "city": city, "postcode": postcode,
            "lat": round(lat + n / 1000, 6), "lng": round(lng - n / 1000, 6), "timezoneId": "Europe/London",
            "email": f"store{n:03d}@example.co.uk", "phone": f"+44 20 7946 {n:04d}", "sandbox": False}


def render_supplier_store(s: tuple[int, str, str, str]) -> dict[str, Any]:
    sid, name, city, postcode = s
    return {"id": supplier_store_id(sid), "supplierId": sid, "supplierName": name, "name": f"{name} ({city})",
            "addressLine1": f"Unit {sid % 100}, Trade Park", "city": city, "postcode": postcode,
            "email": f"accounts@supplier{sid}.example.co.uk", "phone": f"+44 161 496 0{sid}"}


# --- supplier invoices -------------------------------------------------------------------------------
@dataclass(frozen=True)
class InvoiceFacts:
    id: int
    day: dt.date
    customer: int
    supplier: tuple[int, str, str, str]
    added: dt.datetime  # entered into Shopwave
    invoice_date: dt.datetime  # completeDate: "Supplier Invoice Date" [SEED]
    # (product, quantity, unit cost pence excl. VAT)
    lines: tuple[tuple[Product, int, int], ...]

    def totals(self) -> tuple[int, int, int, int]:
        """(quantity, net pence, VAT pence, gross pence): totals are the sums of the lines."""
        qty = net = vat = 0
        for p, q, u in self.lines:
            qty += q
            net += q * u
            vat += _vat_pence(q * u, p.tax)
        return qty, net, vat, net + vat


@lru_cache(maxsize=65_536)
def _invoice_facts(seed: int, lines_per_invoice: int | None, day: dt.date, i: int) -> InvoiceFacts:
    world = World()
    world.config.seed = seed
    r = rng(seed, PROVIDER, "invoice", day.isoformat(), i)
    added = _ms(ts_in_day(r, day, 8, 18))
    invoice_date = _ms(added - dt.timedelta(days=r.randint(0, 3), seconds=r.randint(0, 7200)))
    customer = world.customer(r)
    supplier = SUPPLIERS[r.randrange(len(SUPPLIERS))]
    pool = products_at(world, invoice_date) or [product(seed, 0)]
    lines = []
    for _ in range(lines_per_invoice or r.randint(1, 4)):
        p = r.choice(pool)
        unit_cost = max(1, int(p.price_at(invoice_date) * r.uniform(0.45, 0.65)))
        lines.append((p, r.randint(1, 24), unit_cost))
    return InvoiceFacts(world.day_index(day) * ID_SPACING + i + 1, day, customer, supplier, added, invoice_date,
                        tuple(lines))


def invoice_facts(world: World, day: dt.date, i: int) -> InvoiceFacts:
    return _invoice_facts(world.seed, world.config.lines_per_invoice, day, i)


def iter_invoices(world: World) -> Iterator[InvoiceFacts]:
    """Every invoice entered up to ``as_of`` (GET /invoice is a full snapshot)."""
    as_of = world.as_of
    for day in world.days(EPOCH, as_of.date() + dt.timedelta(days=1)):
        for i in range(world.daily_count(PROVIDER, day, BASE_INVOICES_PER_DAY)):
            f = invoice_facts(world, day, i)
            if f.added <= as_of:
                yield f


def invoice_record(f: InvoiceFacts, _as_of: dt.datetime) -> dict[str, Any]:
    """``render_invoice`` with the signature of the other memoised records: an invoice never changes."""
    return render_invoice(f)


def render_invoice(f: InvoiceFacts) -> dict[str, Any]:
    qty, net, vat, gross = f.totals()
    sid, sname, _city, _pc = f.supplier
    items = {}
    for j, (p, q, unit) in enumerate(f.lines):
        # invoiceItems[{invoiceItemId}]: the item id is the map key; the object has no id [SEED].
        items[str(f.id * 100 + j + 1)] = {
            "barcode": p.barcode, "note": None, "name": p.name, "price": _minor(unit),
            "vatPercentage": float(p.tax), "quantity": q, "productId": p.id, "accountId": 5000 + p.category_id,
        }
    return {
        "id": f.id, "supplierId": sid, "supplierName": sname, "storeId": store_id(f.customer),
        "supplierStoreId": supplier_store_id(sid), "reference": f"SI-{sid}-{f.id}",
        "addedDate": _iso(f.added), "completeDate": _iso(f.invoice_date), "note": None,
        "totalQuantity": qty, "totalPrice": _minor(net), "totalVat": _minor(vat), "totalIncVat": _minor(gross),
        "accountId": sorted({5000 + p.category_id for p, _q, _u in f.lines}), "invoiceItems": items,
    }


# --- consumer sales: baskets, transactions, orders ---------------------------------------------------
@dataclass(frozen=True)
class BasketFacts:
    id: int
    day: dt.date
    customer: int  # the store that sold it
    consumer: int | None
    employee: int
    added: dt.datetime
    completed: dt.datetime
    lines: tuple[tuple[Product, int, int], ...]  # (product, quantity, retail unit price pence)
    payments: tuple[tuple[str, int, int], ...]  # (type, amount pence, tip pence)
    refund_at: dt.datetime | None
    order: tuple[str, dt.datetime] | None  # (type, fulfilled at)

    @property
    def total(self) -> int:
        return sum(q * u for _p, q, u in self.lines)

    def transactions(self) -> list[dict[str, Any]]:
        """Every transaction of the basket (payments, then a refund), whether or not it exists yet."""
        out = []
        n = len(self.payments)
        for j, (kind, amount, tip) in enumerate(self.payments):
            # Transactions are added before the basket is flagged complete [DOC basket/PUT].
            at = self.completed - dt.timedelta(seconds=7 * (n - j))
            out.append({"id": self.id * 10 + j + 1, "basketId": self.id, "storeId": store_id(self.customer),
                        "type": kind, "amount": amount, "tip": tip, "at": at, "Note": None})
        if self.refund_at is not None:
            out.append({"id": self.id * 10 + 9, "basketId": self.id, "storeId": store_id(self.customer),
                        "type": self.payments[0][0], "amount": -self.total, "tip": 0, "at": self.refund_at,
                        "Note": "refund"})
        return out


@lru_cache(maxsize=131_072)
def _basket_facts(seed: int, day: dt.date, i: int) -> BasketFacts:
    world = World()
    world.config.seed = seed
    r = rng(seed, PROVIDER, "basket", day.isoformat(), i)
    completed = _ms(ts_in_day(r, day))
    added = _ms(completed - dt.timedelta(minutes=r.randint(1, 20), seconds=r.randint(0, 59)))
    customer = world.customer(r)
    consumer = r.randint(70_001, 79_999) if r.random() < 0.3 else None
    pool = products_at(world, completed) or [product(seed, 0)]
    lines = []
    for _ in range(r.randint(1, 3)):
        p = r.choice(pool)
        lines.append((p, r.randint(1, 3), p.price_at(completed)))
    total = sum(q * u for _p, q, u in lines)
    if total > 200 and r.random() < 0.2:  # split tender: some cash, the rest by card
        cash = r.randint(1, total // 100) * 100 if total >= 200 else 100
        cash = min(cash, total - 1)
        payments = (("CASH", cash, 0), ("CARD", total - cash, 0))
    else:
        kind = r.choices(TENDERS, TENDER_WEIGHTS)[0]
        tip = r.randint(10, 100) * 5 if kind == "CARD" and r.random() < 0.1 else 0
        payments = ((kind, total, tip),)
    refund_at = None
    if r.random() < 0.04:
        refund_at = _ms(completed + dt.timedelta(days=r.randint(1, REFUND_LAG_DAYS - 1),
                                                 seconds=r.randint(0, 86_399)))
    order = None
    if r.random() < 0.25:
        order = (r.choice(("COLLECTION", "DELIVERY")),
                 _ms(completed + dt.timedelta(hours=r.randint(2, 72), seconds=r.randint(0, 3599))))
    return BasketFacts(world.day_index(day) * ID_SPACING + i + 1, day, customer, consumer, 100 + r.randint(1, 25),
                       added, completed, tuple(lines), payments, refund_at, order)


def basket_facts(world: World, day: dt.date, i: int) -> BasketFacts:
    return _basket_facts(world.seed, day, i)


def iter_baskets(world: World, first: dt.date = EPOCH, last: dt.date | None = None) -> Iterator[BasketFacts]:
    """Baskets started (``addedDate``) up to ``as_of`` on the days first..last inclusive."""
    as_of = world.as_of
    end = min(last, as_of.date()) if last else as_of.date()
    for day in world.days(first, end + dt.timedelta(days=1)):
        for i in range(world.daily_count(f"{PROVIDER}-basket", day, BASE_BASKETS_PER_DAY)):
            f = basket_facts(world, day, i)
            if f.added <= as_of:
                yield f


def render_basket(f: BasketFacts, as_of: dt.datetime, products: bool = True) -> dict[str, Any]:
    done = f.completed <= as_of
    out: dict[str, Any] = {
        "id": f.id, "storeId": store_id(f.customer), "consumerId": f.consumer, "employeeId": f.employee,
        "name": f"Basket {f.id}", "note": None, "addedDate": _iso(f.added),
        "completeDate": _iso(f.completed) if done else None,
        "totalQuantity": sum(q for _p, q, _u in f.lines), "totalPrice": _minor(f.total),
    }
    if products:
        out["basketProducts"] = {
            str(f.id * 100 + j + 1): {"productId": p.id, "productInstanceId": p.instances[0][0], "name": p.name,
                                      "price": _minor(u), "quantity": q, "note": None}
            for j, (p, q, u) in enumerate(f.lines)}
    return out


def render_transaction(t: dict[str, Any]) -> dict[str, Any]:
    return {"id": t["id"], "basketId": t["basketId"], "storeId": t["storeId"], "type": t["type"],
            "amount": t["amount"], "tip": t["tip"], "completeDate": _iso(t["at"]), "Note": t["Note"]}


def order_id(basket_id: int) -> int:
    return 800_000_000 + basket_id


def order_state(f: BasketFacts, as_of: dt.datetime) -> bool:
    """All that an order's record reads of ``as_of``: whether it is completed (the memo keys it by this)."""
    assert f.order is not None
    return f.order[1] <= as_of


def render_order(f: BasketFacts, as_of: dt.datetime) -> dict[str, Any]:
    assert f.order is not None
    kind, fulfilled = f.order
    done = order_state(f, as_of)
    return {"id": order_id(f.id), "basketId": f.id, "storeId": store_id(f.customer), "consumerId": f.consumer,
            "reference": f"ORD-{order_id(f.id)}", "type": kind, "addedDate": _iso(f.completed),
            "completeDate": _iso(fulfilled) if done else None, "completed": done,
            "totalPrice": _minor(f.total), "note": None}


def iter_orders(world: World) -> Iterator[BasketFacts]:
    """Baskets that generated an order, once the basket is complete (an order follows its basket)."""
    as_of = world.as_of
    for f in iter_baskets(world):
        if f.order is not None and f.completed <= as_of:
            yield f


def iter_transactions(world: World, start: dt.datetime | None, end: dt.datetime | None) -> Iterator[dict]:
    """Transactions that exist at ``as_of`` with completeDate in [start, end) (None: unbounded)."""
    as_of = world.as_of
    first = (start - dt.timedelta(days=REFUND_LAG_DAYS)).date() if start else EPOCH
    last = end.date() if end else None
    for f in iter_baskets(world, first, last):
        for t in f.transactions():
            if t["at"] <= as_of and (start is None or t["at"] >= start) and (end is None or t["at"] < end):
                yield t


def iter_completed_baskets(world: World, start: dt.datetime | None, end: dt.datetime | None):
    as_of = world.as_of
    for f in iter_baskets(world, start.date() if start else EPOCH, end.date() if end else None):
        c = f.completed
        if c <= as_of and (start is None or c >= start) and (end is None or c < end):
            yield f


# --- ground truth ------------------------------------------------------------------------------------
def swql_bound(ts: dt.datetime | None) -> dt.datetime | None:
    """A window bound as the hook writes it into SWQL ('YYYY-MM-DD HH:MM:SS', UTC): whole seconds."""
    return None if ts is None else ts.astimezone(UTC).replace(microsecond=0)


def truth(world: World, start: dt.datetime | None = None, end: dt.datetime | None = None) -> dict[str, Any]:
    """What a full extraction of [start, end) yields, de-duplicated by id.

    invoices, orders, stores, supplier_stores and products are full snapshots at ``as_of`` (Shopwave has
    no date filter on them: every run sweeps everything); baskets and transactions come from SWQL with
    ``completeDate >= start AND completeDate < end`` at whole seconds. Money sums are in the raw units
    (pence); receivables in GBP (see the module docstring for the rule).
    """
    as_of = world.as_of
    s, e = swql_bound(start), swql_bound(end)
    zero = Decimal(0)
    counts = {k: 0 for k in ("invoices", "orders", "baskets", "transactions", "stores", "supplier_stores",
                             "products")}
    sums: dict[str, dict[str, Decimal]] = {
        "invoices": {"totalPrice": zero, "totalVat": zero, "totalIncVat": zero},
        "orders": {"totalPrice": zero}, "baskets": {"totalPrice": zero},
        "transactions": {"amount": zero, "tip": zero},
    }
    receivables: dict[tuple[str, str], dict[str, Decimal]] = {}
    lines = 0
    for f in iter_invoices(world):
        _q, net, vat, gross = f.totals()
        counts["invoices"] += 1
        lines += len(f.lines)
        sums["invoices"]["totalPrice"] += net
        sums["invoices"]["totalVat"] += vat
        sums["invoices"]["totalIncVat"] += gross
        c = receivables.setdefault((f"C{f.customer:03d}", CURRENCY), {
            "invoiced": Decimal("0.00"), "paid": Decimal("0.00"), "open": Decimal("0.00")})
        c["invoiced"] += _gbp(gross)
        c["open"] += _gbp(gross)  # no payment history exists for supplier invoices
    for f in iter_orders(world):
        counts["orders"] += 1
        sums["orders"]["totalPrice"] += f.total
    for f in iter_completed_baskets(world, s, e):
        counts["baskets"] += 1
        sums["baskets"]["totalPrice"] += f.total
    for t in iter_transactions(world, s, e):
        counts["transactions"] += 1
        sums["transactions"]["amount"] += t["amount"]
        sums["transactions"]["tip"] += t["tip"]
    counts["stores"] = World.N_CUSTOMERS
    counts["supplier_stores"] = len(SUPPLIERS)
    counts["products"] = len(products_at(world, as_of))
    return {"provider": PROVIDER, "counts": counts,
            "sums": {k: {c: Decimal(v) for c, v in cols.items()} for k, cols in sums.items()},
            "receivables": receivables,
            "invoice_lines": lines}


# --- HTTP --------------------------------------------------------------------------------------------
class ApiProblem(Exception):
    """An error answered with the documented envelope."""

    def __init__(self, error_id: int, detail: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(detail or ERRORS[error_id][3])
        self.error_id, self.detail, self.headers = error_id, detail, headers or {}


def _api(started: float, message: dict[str, Any]) -> dict[str, Any]:
    return {"message": message, "codeBaseVersion": API_VERSION,
            "executionTime_milliSeconds": int((time.perf_counter() - started) * 1000)}


def error_body(error_id: int, detail: str | None = None, started: float | None = None) -> dict[str, Any]:
    status, code, title, details = ERRORS[error_id]
    return {"error": {"code": status, "message": title, "details": [detail or details]},
            "api": _api(started or time.perf_counter(), {"error": {str(error_id): {
                "id": error_id, "code": code, "statusCode": status, "title": title, "details": details}}})}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSONResponse's text, serialised once without FastAPI's encoder."""
    return json_response(body, status, headers={"x-api-version": API_VERSION, **(headers or {})})


_API_ERRORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def inject_api_errors(state: Any, *error_ids: int) -> None:
    """Test hook: each of the next data responses (one per id) is HTTP 200 but partial -- half of its
    records -- with ``api.message.error`` naming that id ("api.message can contain an error map even on
    partial success" [DOC errors.html]). A client that checks only the status would lose records."""
    _API_ERRORS.setdefault(state, []).extend(error_ids)


def _ids(request: Request, name: str) -> set[int] | None:
    """A filter header: a comma-separated list of ids ([DOC pagination.html]); absent = everything."""
    raw = request.headers.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return {int(x) for x in raw.split(",") if x.strip()}
    except ValueError:
        raise ApiProblem(913, f"{name} must be a comma separated list of ids, got {raw!r}") from None


def _bool(request: Request, name: str) -> bool | None:
    raw = request.headers.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise ApiProblem(913, f"{name} must be true or false, got {raw!r}")


# SWQL: "<Entity>.<field> <op> '<value>'" (or an unquoted integer)
_COND = re.compile(r"^\s*(Basket|Transaction)\.(\w+)\s*(>=|<=|>|<|=)\s*(?:'([^']*)'|(-?\d+))\s*$")
_SELECT = re.compile(r"^\s*(Basket|Transaction)\.(\w+)(?:\s+AS\s+(\w+))?\s*$", re.IGNORECASE)
REPORT_FIELDS = {
    "Basket": ("id", "storeId", "consumerId", "employeeId", "name", "note", "addedDate", "completeDate",
               "totalQuantity", "totalPrice"),
    "Transaction": ("id", "basketId", "storeId", "type", "amount", "tip", "completeDate", "Note"),
}
DATE_FIELDS = {"completeDate", "addedDate"}
ID_FIELDS = {"id", "storeId", "basketId"}
_OPS = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b, "=": lambda a, b: a == b}


@dataclass
class SwqlQuery:
    entity: str
    select: list[tuple[str, str]]  # (field, output key)
    date_conditions: list[tuple[str, str, dt.datetime]]
    id_conditions: list[tuple[str, str, int]]


def parse_swql(raw: str | None) -> SwqlQuery:
    """Parse the ``query`` header; anything this simulator does not understand is a 913."""
    if not raw:
        raise ApiProblem(913, "the query header (SWQL) is required")
    try:
        q = json.loads(raw)
    except json.JSONDecodeError:
        raise ApiProblem(913, "the query header is not valid JSON") from None
    if not isinstance(q, dict) or set(q) != {"0"} or not isinstance(q["0"], dict):
        raise ApiProblem(913, 'the query header must be {"0": {"FROM": ..., "WHERE": ...}}')
    body = q["0"]
    entity = body.get("FROM")
    if entity not in REPORT_FIELDS:
        raise ApiProblem(913, f"FROM must be one of {', '.join(REPORT_FIELDS)}, got {entity!r}")
    if "GROUP" in body:
        raise ApiProblem(913, "GROUP is not supported by this simulator")
    where = body.get("WHERE")
    if not isinstance(where, dict) or set(where) != {"AND"} or not isinstance(where["AND"], list):
        raise ApiProblem(913, 'WHERE must be {"AND": ["<condition>", ...]}')
    dates, ids = [], []
    for cond in where["AND"]:
        m = _COND.match(cond) if isinstance(cond, str) else None
        if not m or m.group(1) != entity:
            raise ApiProblem(913, f"cannot read the condition {cond!r}")
        _ent, fld, op, text, number = m.groups()
        if fld in DATE_FIELDS and text is not None and not (entity == "Transaction" and fld == "addedDate"):
            try:
                value = dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            except ValueError:
                raise ApiProblem(913, f"{entity}.{fld}: {text!r} is not 'YYYY-MM-DD HH:MM:SS'") from None
            dates.append((fld, op, value))
        elif fld in ID_FIELDS and fld in REPORT_FIELDS[entity]:
            try:
                ids.append((fld, op, int(number if number is not None else text)))
            except ValueError:
                raise ApiProblem(913, f"{entity}.{fld}: {text!r} is not an id") from None
        else:
            raise ApiProblem(913, f"{entity}.{fld} cannot be filtered on")
    select = [(f, f"{entity}.{f}") for f in REPORT_FIELDS[entity]]
    if body.get("SELECT"):
        select = []
        for part in str(body["SELECT"]).split(","):
            m = _SELECT.match(part)
            if not m or m.group(1) != entity or m.group(2) not in REPORT_FIELDS[entity]:
                raise ApiProblem(913, f"cannot select {part.strip()!r}")
            select.append((m.group(2), m.group(3) or f"{entity}.{m.group(2)}"))
    return SwqlQuery(entity, select, dates, ids)


def _window(q: SwqlQuery) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The tightest completeDate day range the conditions allow (to avoid scanning every day)."""
    lo = hi = None
    for fld, op, v in q.date_conditions:
        if fld != "completeDate":
            continue
        if op in (">", ">=", "="):
            lo = v if lo is None else max(lo, v)
        if op in ("<", "<=", "="):
            hi = v + dt.timedelta(seconds=1) if hi is None else min(hi, v + dt.timedelta(seconds=1))
    return lo, hi


def run_report(world: World, q: SwqlQuery) -> list[dict[str, Any]]:
    """The completed records matching the query, in id order, as field -> API value."""
    as_of = world.as_of
    lo, hi = _window(q)
    if q.entity == "Basket":
        rows = [(render_basket(f, as_of, products=False), {"completeDate": f.completed, "addedDate": f.added})
                for f in iter_completed_baskets(world, lo, hi)]
    else:
        rows = [(render_transaction(t), {"completeDate": t["at"]}) for t in iter_transactions(world, lo, hi)]
    out = []
    for rec, dates in rows:
        if all(_OPS[op](dates[fld], v) for fld, op, v in q.date_conditions) and \
                all(_OPS[op](rec[fld], v) for fld, op, v in q.id_conditions):
            out.append(rec)
    out.sort(key=lambda rec: rec["id"])
    return out


def make_app(state, *, memo_bytes: int | None = None) -> FastAPI:
    """The Shopwave app; ``state`` is the shared SimState (world, faults, credentials, tokens).

    ``GET /invoice`` and ``GET /order`` serve each record's JSON bytes from a memo (``app.state.record_memo``,
    bounded by ``memo_bytes``, default ``MEMO_BYTES``, 0: off) keyed by :class:`RecordKey`: an invoice never
    changes, an order only when it completes, so the sweep after a move of the clock renders only the new
    and the newly completed records. The memo is off on the real clock."""
    app = FastAPI(title="Shopwave simulator")
    memo = BytesMemo(MEMO_BYTES if memo_bytes is None else memo_bytes)
    app.state.record_memo = memo  # read by tests, benchmarks and GET /_sim/memo/shopwave

    @app.exception_handler(ApiProblem)
    async def problem(request: Request, exc: ApiProblem):
        return _json(error_body(exc.error_id, exc.detail), ERRORS[exc.error_id][0], exc.headers)

    # --- OAuth2 (secure.merchantstack.com/oauth/token) ----------------------------------------------
    @app.post("/oauth/token")
    async def token(request: Request):
        raw = await request.body()
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                form = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                form = None
            if not isinstance(form, dict):
                return JSONResponse({"error": "invalid_request", "error_description": "body is not JSON"}, 400)
        else:
            form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        creds = state.credentials[PROVIDER]
        grant_type = form.get("grant_type")
        if not grant_type:
            return JSONResponse({"error": "invalid_request",
                                 "error_description": "The grant type was not specified in the request"}, 400)
        if grant_type != "refresh_token":
            # The authorization_code step needs the merchant's consent in a browser: not simulated.
            return JSONResponse({"error": "unsupported_grant_type",
                                 "error_description": f"Grant type {grant_type!r} not supported"}, 400)
        for name in ("client_id", "client_secret", "refresh_token"):
            if not form.get(name):
                return JSONResponse({"error": "invalid_request",
                                     "error_description": f"Missing parameter: {name!r} is required"}, 400)
        if form["client_id"] != creds["client_id"] or form["client_secret"] != creds["client_secret"]:
            return JSONResponse({"error": "invalid_client",
                                 "error_description": "The client credentials are invalid"}, 401)
        if form["refresh_token"] != creds["refresh_token"]:
            return JSONResponse({"error": "invalid_grant", "error_description": "Invalid refresh token"}, 400)
        ttl = state.faults[PROVIDER].token_ttl
        access = state.tokens[PROVIDER].issue("sw", float(ttl) if ttl is not None else float(TOKEN_TTL))
        return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": TOKEN_TTL,
                             "refresh_token": creds["refresh_token"], "scope": "read write"})

    # --- data ---------------------------------------------------------------------------------------
    def guard(request: Request) -> dict[str, Any]:
        """Auth and version checks; returns the api.message of a successful answer."""
        header = request.headers.get("authorization", "")
        parts = header.split(" ")
        if len(parts) != 2 or not parts[0] or not parts[1] or parts[0].lower() != "bearer":
            raise ApiProblem(911)
        if state.tokens[PROVIDER].check(parts[1]) != "ok":
            raise ApiProblem(908)  # "Token expired or invalid. Please renew your token" [SEED]
        version = request.headers.get("x-accept-version")
        if version is None or version.strip() == "":
            raise ApiProblem(913, "x-accept-version header is required (send x-accept-version: 2.0)")
        if version.strip() in ("2", "2.0"):
            return {"success": dict(SUCCESS_TOKEN_VALID)}
        if version.strip() in ("1", "1.0"):
            return {"success": dict(SUCCESS_TOKEN_VALID), "warning": dict(WARNING_OLD_VERSION)}
        raise ApiProblem(913, f"x-accept-version {version!r} is not supported; use 2.0")

    def take_api_error(message: dict[str, Any], records: list) -> tuple[dict[str, Any], list]:
        """A pending injected error (tests): half the records, and the error in api.message."""
        pending = _API_ERRORS.get(state)
        if not pending:
            return message, records
        error_id = pending.pop(0)
        status_, code, title, details = ERRORS[error_id]
        entry = {"id": error_id, "code": code, "statusCode": status_, "title": title, "details": details}
        return {**message, "error": {str(error_id): entry}}, records[: len(records) // 2]

    def answer(message: dict[str, Any], started: float, key: str, records: list[dict[str, Any]]):
        message, records = take_api_error(message, records)
        return _json({key: {str(r["id"]): r for r in records}, "api": _api(started, message)})

    def answer_memoised(message: dict[str, Any], started: float, key: str, world: World,
                        request_memo: BytesMemo | None, items: list[tuple[RecordKey, Any]]):
        """``answer`` for records named by (memo key, facts) pairs, whose ``ident`` is the record's id:
        the same text, with each record's bytes rendered (``key.render(facts, as_of)``) only when the memo
        does not have them. The ids are unique, as ``answer``'s map needs."""
        keys = [k for k, _f in items]
        facts_of = {k.ident: f for k, f in items}
        recs = records(request_memo, keys, lambda k: dumps(k.render(facts_of[k.ident], world.as_of)))
        message, pairs = take_api_error(message, list(zip(keys, recs, strict=True)))
        body = {key: splice({str(k.ident): rec for k, rec in pairs}), "api": _api(started, message)}
        return Response(splice(body), headers={"x-api-version": API_VERSION}, media_type="application/json")

    def owned_stores(request: Request) -> set[int] | None:
        wanted = _ids(request, "storeIds")
        if wanted is not None:
            foreign = sorted(wanted - {store_id(n) for n in range(1, World.N_CUSTOMERS + 1)})
            if foreign:
                raise ApiProblem(912, f"store {foreign[0]} does not belong to this merchant")
        return wanted

    @app.get("/status")
    def status(request: Request):
        started = time.perf_counter()
        message = guard(request)
        return _json({"status": "shopwave is up", "serverTimestamp": _iso(dt.datetime.now(UTC)),
                      "api": _api(started, message)})

    @app.get("/invoice")
    def invoices(request: Request):
        started = time.perf_counter()
        message = guard(request)
        ids, stores = _ids(request, "invoiceId"), owned_stores(request)
        world, request_memo = pinned_world(state.world, memo)
        config = (world.seed, world.config.lines_per_invoice)  # an invoice's facts follow from these
        items = [(RecordKey(invoice_record, config, f.id, ()), f) for f in iter_invoices(world)
                 if (ids is None or f.id in ids) and (stores is None or store_id(f.customer) in stores)]
        return answer_memoised(message, started, "invoices", world, request_memo, items)

    @app.get("/order")
    def orders(request: Request):
        started = time.perf_counter()
        message = guard(request)
        ids, stores, completed = _ids(request, "orderIds"), owned_stores(request), _bool(request, "completed")
        world, request_memo = pinned_world(state.world, memo)
        as_of, config = world.as_of, (world.seed,)  # a basket's facts follow from the seed
        items = []
        for f in iter_orders(world):
            done = order_state(f, as_of)
            if (ids is None or order_id(f.id) in ids) and (stores is None or store_id(f.customer) in stores) \
                    and (completed is None or done is completed):
                items.append((RecordKey(render_order, config, order_id(f.id), done), f))
        return answer_memoised(message, started, "orders", world, request_memo, items)

    @app.get("/basket")
    def baskets(request: Request):
        started = time.perf_counter()
        message = guard(request)
        ids, stores = _ids(request, "basketIds"), owned_stores(request)
        as_of = state.world.as_of
        recs = [render_basket(f, as_of) for f in iter_baskets(state.world)
                if (ids is None or f.id in ids) and (stores is None or store_id(f.customer) in stores)]
        return answer(message, started, "baskets", recs)

    @app.get("/transaction")
    def transactions(request: Request):
        started = time.perf_counter()
        message = guard(request)
        ids, baskets_ = _ids(request, "transactionIds"), _ids(request, "basketIds")
        recs = [render_transaction(t) for t in iter_transactions(state.world, None, None)
                if (ids is None or t["id"] in ids) and (baskets_ is None or t["basketId"] in baskets_)]
        return answer(message, started, "transactions", recs)

    @app.get("/store")
    def stores(request: Request):
        started = time.perf_counter()
        message = guard(request)
        ids = _ids(request, "storeIds")
        recs = [render_store(n) for n in range(1, World.N_CUSTOMERS + 1) if ids is None or store_id(n) in ids]
        return answer(message, started, "stores", recs)

    @app.get("/supplier/store")
    def supplier_stores(request: Request):
        started = time.perf_counter()
        message = guard(request)
        ids = _ids(request, "supplierIds")
        recs = [render_supplier_store(s) for s in SUPPLIERS if ids is None or s[0] in ids]
        return answer(message, started, "supplierStores", recs)

    @app.get("/product")
    def products(request: Request):
        started = time.perf_counter()
        message = guard(request)
        ids, cats = _ids(request, "productIds"), _ids(request, "categoryIds")
        as_of = state.world.as_of
        recs = [render_product(p, as_of) for p in products_at(state.world, as_of)
                if (ids is None or p.id in ids) and (cats is None or p.category_id in cats)]
        return answer(message, started, "products", recs)

    @app.get("/report")
    def report(request: Request):
        started = time.perf_counter()
        message = guard(request)
        q = parse_swql(request.headers.get("query"))
        faults = state.faults[PROVIDER]
        recs = run_report(state.world, q)
        if faults.drift:
            recs = recs[::-1]  # no stable order: the newest rows first
        if faults.duplicates:
            recs = [r for i, rec in enumerate(recs) for r in ((rec, rec) if i % 10 == 0 else (rec,))]
        message, recs = take_api_error(message, recs)
        keys = [out for _f, out in q.select]
        data = [[rec[f] for f, _out in q.select] for rec in recs]
        return _json({"report": {"0": {"keys": keys, "data": data}}, "api": _api(started, message)})

    return app
