"""REDEX public API v2 simulator (seed 003, providers.md section 4): invoices, invoice detail with
items, REC spot-exchange transactions, and the api-key token grant.

Endpoints (all answers in the seed's envelope ``{Data, Meta, Errors, StatusCode, Message}``, HTTP status
= ``StatusCode``; 400/401/403 exactly as the seed prints them; 403 also for another organisation's
invoice number and 404 for an unknown one [INF]; a 400 lists its validation errors in ``Errors``):

* ``POST /public/v2/connect/token``: JSON ``{"ApiKey","GrantType":"api_key","ClientId","ClientSecret"}``
  (each at most 36 characters) -> ``Data{AccessToken, RefreshToken, ExpiresIn, TokenType:"Bearer",
  Scope}``. ``ExpiresIn`` is a *string* (``"3600"``) as in the token page; access tokens live 3600 s
  (or the ``token_ttl`` fault), refresh tokens 2,592,000 s (30 days).
* ``POST /public/v2/connect/token/refresh``: ``{"RefreshToken","GrantType":"refresh_token","ClientId",
  "ClientSecret"}`` -> a new access token and a new refresh token.
* ``GET /public/v2/invoices``: ``Statuses`` (repeat the key; ``Statuses[]`` and ``Status`` of the
  2024-10 page are accepted too), ``Types``, ``TransactionType`` (AccountsPayable | AccountsReceivable;
  absent = both), ``Search`` (invoice number, substring), ``CurrentPage`` (1-based), ``ItemsPerPage``
  (default 10 as in the seed's Meta; the maximum is undocumented: clamped to 100 [INF]), ``OrderBy``
  (CreatedDate, IssuedDate, InvoiceNumber) and ``IsDecending`` (sic). The seed says both "default sort
  CreatedDate Desc" and "IsDecending default false": without ``OrderBy`` the order is CreatedDate desc;
  with it, ascending unless ``IsDecending=true``. **No date filter exists**: a client sweeps it all.
* ``GET /public/v2/invoices/{InvoiceNumber}``: the row plus ``Payer``/``Payee`` parties and
  ``MainInvoice{Total, SubTotal, PayeeTaxAmount, PayerTaxAmount, PayerSubTotal, PayeeSubTotal,
  Items[]}``; items carry the 2024-10 fields and the older ``DeviceName, Vintage, CountryCode, FuelType``.
* ``GET /public/v2/spot-exchange/transactions``: the spot-exchange transaction list. The docs name the
  page ("[GET] GET Spot exchange transactions") but the captured copy lost the path: this path, with the
  invoices' paging and envelope, is an assumption [INF]. Filters ``MarketIds`` (repeatable; the ids
  of ``MARKET_IDS``), ``Statuses``, ``Side``; ``OrderBy=CreatedTime`` and ``IsDecending`` as for invoices
  (default CreatedTime desc) [INF].

Data endpoints take ``Authorization: Bearer <token>`` (current page) or the bare token (the seed's
``Authorization: {{token}}``). Quirks reproduced from the docs: amounts are JSON *numbers* with up to 6
decimals (``TotalReceivable 1240.2835``, ``Quantity 3.000000``) and ``Total`` rounded to cents;
``IssuedDate``/``DueDate``/``PaidDate`` carry 7 fractional digits, with ``Z`` in the 2024-10 shape and
without it in the 2024-03 shape (both "UTC format"); ``DueDate`` is ``23:59:59.9999999``;
``CreatedTime``/``UpdatedTime`` have 2-3 fractional digits and no ``Z``. Both documented row shapes are
served side by side, decided per invoice, because the hook must detect per row (providers.md 4.5):

* 2024-03 ("legacy", the seed): ``Status`` a string + ``StatusDescription``, ``Type``/``TypeDescription``,
  ``SubTotal``, ``TotalFee``, ``TotalReceivable``, ``TaxPercent``, ``TaxAmount``, ``CurrencySymbolic``;
* 2024-10 ("current"): ``Status`` as ``{Value, Description}``, ``WhiteLabelName``,
  ``PayerTaxPercentage/PayerTaxAmount/PayeeTaxPercentage/PayeeTaxAmount``, ``IssuedDate`` at midnight.

The business: our account trades I-RECs on the REDEX spot exchange. Each matched trade is an item of an
invoice: our sells are invoiced to the buyer (``AccountsReceivable``, number ``INV-REAR-...``), our buys
are invoiced to us (``AccountsPayable``, ``INV-REAP-...``; the seed's AccountsPayable request answered an
``INV-REAP`` number, the 2024-10 page an ``INV-REAR`` one). The counterparty company is a business
customer of the shared world; its provider-local id is its ``RegistrationNumber`` (:func:`customer_id`).
Money (the seed's own arithmetic: 1176.3 - 27.8865 = 1148.4135; x 0.08 = 91.87308):
``SubTotal`` = sum of items' ``TotalPrice``; ``TotalFee`` = the platform fee; ``TaxAmount`` =
round2((SubTotal - TotalFee) x TaxPercent) = 91.87; ``TotalReceivable`` = SubTotal - TotalFee +
TaxAmount = 1240.2835; ``Total`` = round2(SubTotal - TotalFee + unrounded tax) = 1240.29.
``PayerSubTotal`` = ``PayeeSubTotal`` = SubTotal - TotalFee, ``PayerTaxAmount`` = TaxAmount,
``PayeeTaxAmount`` = 0 [INF].

Life of an invoice (events; its state is the latest event up to ``as_of``): ``Sending`` when created,
``Unpaid`` minutes later, then one of: paid (sometimes via ``WaitingForConfirm``, ``PaidFail`` or
``PartialPaid`` first, ``PaymentFollowUp`` when past due; ``PaidDate`` set; a few later ``Refunded``),
``OfflineManual`` (settled off-platform), ``Cancelled``, a terminal ``PaidFail`` or ``PartialPayment``,
or never paid: ``Expired`` or ``PaymentFollowUp`` after the due date.

Receivables rule (what the dbt marts reproduce from ``stg_redex__invoices``; REDEX has no payment, credit
note or return endpoint, so the header status is all the warehouse can know):

* only ``AccountsReceivable`` invoices (direction ``receivable``) are receivables; key = (customer key
  of the Payer, currency);
* void = ``Cancelled``, ``Expired`` (lapsed unpaid, the trade is voided) and ``Refunded`` (the trade was
  unwound and the money returned): not invoiced, nothing paid, nothing open;
* invoiced = sum of ``Total`` of the other invoices; paid = ``Total`` of invoices whose status is
  ``Paid`` or ``OfflineManual`` (partial statuses carry no amount: counted as unpaid); credits = 0;
  open = invoiced - paid.

``truth()`` ignores its window: with no date filter every run sweeps everything that exists as of
``world.as_of``, so that is exactly what a full extraction of any window yields. ``counters(state)``
counts the token calls answered (api-key grants, refreshes, refusals) for the auth tests. No rate limit
is set by default: the docs have a "Rate limit" section whose numbers were not captured.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
import weakref
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property, lru_cache
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from simulators.jsonbody import (
    MEMO_BYTES,
    BytesMemo,
    RecordKey,
    array,
    dumps,
    exact_number,
    pinned_world,
    records,
    splice,
)
from simulators.world import EPOCH, UTC, QueryCache, World, WorldConfig, customer_name, money, rng, ts_in_day

PROVIDER = "redex"
BASE_PER_DAY = 6  # invoices per day (both directions)
BASE_OPEN_ORDERS_PER_DAY = 2  # spot orders that never match (no invoice)
ACCESS_TTL = 3600  # [DOC token page] access token 3600 s
REFRESH_TTL = 2_592_000  # [DOC] refresh token 30 days
MAX_ITEMS_PER_PAGE = 100  # undocumented maximum [INF]
DEFAULT_ITEMS_PER_PAGE = 10  # the seed's Meta.ItemsPerPage
SCOPE = "REConnect_api REDEX_api REHash_api"
# Demo credentials of the simulator only (ClientId/ClientSecret/ApiKey, each <= 36 characters).
CREDENTIALS = {"client_id": "redex-sim-client", "client_secret": "redex-sim-client-secret",
               "api_key": "3f6c2a9e-7b1d-4e15-9a40-5d2c8b7e1f03"}

DIRECTIONS = {"AccountsPayable": "REAP", "AccountsReceivable": "REAR"}
ORG_DIRECTION = {v: k for k, v in DIRECTIONS.items()}
TYPES = ("Trading", "Retirement", "DeListing")
STATUS_DESCRIPTIONS = {
    # 2024-03 seed values
    "Unpaid": "Unpaid", "Paid": "Paid", "Expired": "Expired", "Cancelled": "Cancelled",
    "Sending": "Sending", "Refunded": "Refunded", "PaidFail": "Paid Fail",
    # 2024-10 additions
    "WaitingForConfirm": "Waiting For Confirm", "PartialPayment": "Partial Payment",
    "PartialPaid": "Partial Paid", "PaymentFollowUp": "Payment Follow Up", "OfflineManual": "Offline Manual",
}
PAID_STATUSES = frozenset({"Paid", "OfflineManual"})
VOID_STATUSES = frozenset({"Cancelled", "Expired", "Refunded"})
TX_STATUSES = ("Pending", "Settled", "Voided", "Cancelled", "Refunded", "Requested")
CURRENCY_SYMBOLS = {"USD": "$", "SGD": "S$"}
WHITE_LABELS = ("REDEX", "Sinamas", "Xinyao")
ACCOUNT = {"CompanyName": "Invoice Warehouse Demo Pte. Ltd.", "RegistrationNumber": "202400001W",
           "Address": "1 Raffles Place, #20-01, Singapore 048616", "Country": "Singapore"}
USER_NAME = "iwh.trader"
# (DeviceUniqueId, DeviceName, CountryCode, FuelType, ticker fuel code): REC devices traded.
DEVICES = (
    ("VNSLR00001", "Ninh Thuan Solar Farm", "VN", "Solar", "SLR"),
    ("VNWND00002", "Bac Lieu Wind Farm", "VN", "Wind", "WND"),
    ("IDHYD00003", "Cirata Hydro Power Plant", "ID", "Hydro", "HYD"),
    ("MYSLR00004", "Kedah Solar Park", "MY", "Solar", "SLR"),
    ("THBIO00005", "Saraburi Biomass Plant", "TH", "Biomass", "BIO"),
    ("PHGEO00006", "Tiwi Geothermal Complex", "PH", "Geothermal", "GEO"),
)
FEE_RATES = (Decimal("0.015"), Decimal("0.02"), Decimal("0.0237"))
TAX_RATES = (Decimal("0"), Decimal("0.08"), Decimal("0.09"))  # Singapore GST 8% (2023), 9% (2024)
FOUR = Decimal("0.0001")
SIX = Decimal("0.000001")


def customer_id(n: int) -> str:
    """Business customer ``n`` as REDEX knows it: the company's RegistrationNumber (Singapore UEN)."""
    return f"{201900000 + n}K"


def round2(x: Decimal) -> Decimal:
    return x.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


# --- the business -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ItemFacts:
    """One matched spot trade, billed as one invoice item."""

    order_id: int
    transaction_id: str
    device: tuple[str, str, str, str, str]
    vintage: int
    quantity: Decimal
    unit_price: Decimal
    limit_price: Decimal
    placed: dt.datetime
    matched: dt.datetime

    @property
    def total(self) -> Decimal:
        return round2(self.quantity * self.unit_price)

    @property
    def ticker(self) -> str:
        return f"{self.device[2]}.{self.vintage % 100:02d}.{self.device[4]}.i"


@dataclass(frozen=True)
class InvoiceFacts:
    """The whole life of one invoice, from which its state at any ``as_of`` follows."""

    day: dt.date
    index: int
    direction: str  # AccountsPayable | AccountsReceivable
    legacy: bool  # rendered in the 2024-03 (seed) shape
    type: str
    currency: str
    customer: int
    white_label: str
    fee_code: str | None
    issued: dt.datetime
    created: dt.datetime
    due: dt.date
    fee_rate: Decimal
    tax_rate: Decimal
    events: tuple[tuple[dt.datetime, str], ...]
    items: tuple[ItemFacts, ...]

    @property
    def number(self) -> str:
        return f"INV-{DIRECTIONS[self.direction]}-{self.day.isoformat()}-{self.index + 1:05d}"

    # money (the seed's arithmetic, see the module docstring); cached: a row reads subtotal ~8 times
    @cached_property
    def subtotal(self) -> Decimal:
        return sum((i.total for i in self.items), Decimal("0.00"))

    @cached_property
    def quantity(self) -> Decimal:
        return sum((i.quantity for i in self.items), Decimal("0"))

    @cached_property
    def fee(self) -> Decimal:
        return (self.subtotal * self.fee_rate).quantize(FOUR, rounding=ROUND_HALF_UP)

    @cached_property
    def net(self) -> Decimal:
        return self.subtotal - self.fee

    @cached_property
    def tax(self) -> Decimal:
        return round2(self.net * self.tax_rate)

    @cached_property
    def total_receivable(self) -> Decimal:
        return self.net + self.tax

    @cached_property
    def total(self) -> Decimal:
        return round2(self.net + self.net * self.tax_rate)

    def state(self, as_of: dt.datetime) -> dict[str, Any]:
        status, updated, paid_at, changed_at = "Sending", self.created, None, self.created
        for t, s in self.events:
            if t > as_of:
                break
            status, updated, changed_at = s, t, t
            if s in PAID_STATUSES and paid_at is None:
                paid_at = t
        return {"status": status, "updated": updated, "paid_at": paid_at, "changed_at": changed_at}


def facts(world: World, day: dt.date, i: int) -> InvoiceFacts:
    """Invoice ``i`` of ``day`` (memoised: a transactions page asks for an invoice once per item, and a
    list sweep after a move of the clock reads every invoice again to find the records whose state
    changed)."""
    return _cached_facts(world.seed, world.config.lines_per_invoice, day, i)


#: Invoices whose facts stay cached: a year at scale 5 (about 10k invoices) with room for its daily runs,
#: so that a sweep at a new ``as_of`` regenerates none of them (about 4 KB each with 3 items, ~70 MB full).
FACTS_CACHE = 16_384


@lru_cache(maxsize=FACTS_CACHE)
def _cached_facts(seed: int, lines_per_invoice: int | None, day: dt.date, i: int) -> InvoiceFacts:
    # an invoice depends on the seed and the line count only (not on as_of, scale or per_day)
    return _make_facts(World(WorldConfig(seed=seed, lines_per_invoice=lines_per_invoice)), day, i)


def _make_facts(world: World, day: dt.date, i: int) -> InvoiceFacts:
    r = rng(world.seed, PROVIDER, "invoice", day.isoformat(), i)
    direction = "AccountsReceivable" if r.random() < 0.55 else "AccountsPayable"
    legacy = r.random() < 0.35
    type_ = r.choices(TYPES, [0.8, 0.15, 0.05])[0]
    currency = "SGD" if r.random() < 0.1 else "USD"
    customer = world.customer(r)
    white_label = r.choices(WHITE_LABELS, [0.8, 0.12, 0.08])[0]
    fee_code = f"FC{r.randint(1, 9):04d}" if r.random() < 0.2 else None
    issued = ts_in_day(r, day, 8, 22)
    created = issued + dt.timedelta(microseconds=r.randint(100_000, 900_000))
    due = issued.date() + dt.timedelta(days=r.randint(2, 10))
    due_end = dt.datetime(due.year, due.month, due.day, 23, 59, 59, 999_999, tzinfo=UTC)
    fee_rate, tax_rate = r.choice(FEE_RATES), r.choice(TAX_RATES)

    unpaid_at = created + dt.timedelta(seconds=r.randint(20, 1200))
    events: list[tuple[dt.datetime, str]] = [(unpaid_at, "Unpaid")]

    def after(t: dt.datetime) -> dt.datetime:
        return max(t, unpaid_at + dt.timedelta(seconds=1))

    outcome = r.choices(["paid", "offline", "cancelled", "paidfail", "partial", "never"],
                        [0.55, 0.07, 0.05, 0.05, 0.05, 0.23])[0]
    if outcome == "paid":
        pay = created + dt.timedelta(seconds=r.randint(3600, int((due_end - created).total_seconds()) + 3 * 86400))
        pre = r.random()
        if pre < 0.25:
            events.append((after(pay - dt.timedelta(seconds=r.randint(3600, 36 * 3600))), "WaitingForConfirm"))
        elif pre < 0.35:
            events.append((after(pay - dt.timedelta(seconds=r.randint(7200, 48 * 3600))), "PaidFail"))
        elif pre < 0.45:
            events.append((after(pay - dt.timedelta(seconds=r.randint(7200, 72 * 3600))), "PartialPaid"))
        if pay > due_end + dt.timedelta(hours=1):
            events.append((due_end + dt.timedelta(hours=1), "PaymentFollowUp"))
        events.append((pay, "Paid"))
        if r.random() < 0.06:
            events.append((pay + dt.timedelta(seconds=r.randint(86400, 20 * 86400)), "Refunded"))
    elif outcome == "offline":
        events.append((created + dt.timedelta(seconds=r.randint(86400, 20 * 86400)), "OfflineManual"))
    elif outcome == "cancelled":
        events.append((created + dt.timedelta(seconds=r.randint(1800, 3 * 86400)), "Cancelled"))
    elif outcome == "paidfail":
        events.append((after(created + dt.timedelta(seconds=r.randint(6 * 3600, 2 * 86400))), "PaidFail"))
    elif outcome == "partial":
        events.append((created + dt.timedelta(seconds=r.randint(86400, 8 * 86400)), "PartialPayment"))
    else:
        lapse = due_end + dt.timedelta(seconds=r.randint(1, 3600))
        events.append((lapse, "Expired" if r.random() < 0.6 else "PaymentFollowUp"))
    events.sort(key=lambda e: e[0])

    n_items = world.config.lines_per_invoice or r.randint(1, 4)
    items = []
    day_index = world.day_index(day)
    for j in range(n_items):
        ri = rng(world.seed, PROVIDER, "item", day.isoformat(), i, j)
        device = ri.choice(DEVICES)
        unit = money(Decimal(ri.randint(50, 1500)) / 100)
        if currency == "SGD":
            unit = money(unit * Decimal("1.35"))
        matched = issued - dt.timedelta(seconds=ri.randint(60, 6 * 3600))
        slack = money(Decimal(ri.randint(0, 20)) / 100)
        limit = unit + slack if direction == "AccountsPayable" else max(Decimal("0.01"), unit - slack)
        items.append(ItemFacts(
            order_id=day_index * 10_000_000 + i * 100 + j + 1,
            transaction_id=str(uuid.UUID(int=ri.getrandbits(128), version=4)),
            device=device, vintage=ri.choice((2022, 2023, 2024)),
            quantity=Decimal(ri.randint(1, 200)), unit_price=unit, limit_price=limit,
            placed=matched - dt.timedelta(seconds=ri.randint(0, 7200)), matched=matched))
    return InvoiceFacts(day, i, direction, legacy, type_, currency, customer, white_label, fee_code, issued,
                        created, due, fee_rate, tax_rate, tuple(events), tuple(items))


@dataclass(frozen=True)
class OpenOrderFacts:
    """A spot order that never matched: Requested, perhaps Cancelled later; no invoice."""

    order_id: int
    transaction_id: str
    device: tuple[str, str, str, str, str]
    vintage: int
    side: str
    currency: str
    quantity: Decimal
    price: Decimal
    placed: dt.datetime
    cancelled: dt.datetime | None

    @property
    def ticker(self) -> str:
        return f"{self.device[2]}.{self.vintage % 100:02d}.{self.device[4]}.i"


def open_orders(world: World, day: dt.date) -> list[OpenOrderFacts]:
    return [open_order(world, day, k)
            for k in range(world.daily_count(f"{PROVIDER}:open-orders", day, BASE_OPEN_ORDERS_PER_DAY))]


def open_order(world: World, day: dt.date, k: int) -> OpenOrderFacts:
    """Open order ``k`` of ``day`` (``k`` below the day's count of open orders; memoised as ``facts``)."""
    return _cached_open_order(world.seed, day, k)


@lru_cache(maxsize=FACTS_CACHE)
def _cached_open_order(seed: int, day: dt.date, k: int) -> OpenOrderFacts:
    world = World(WorldConfig(seed=seed))  # an open order depends on the seed only
    r = rng(world.seed, PROVIDER, "open-order", day.isoformat(), k)
    placed = ts_in_day(r, day, 0, 24)
    cancelled = placed + dt.timedelta(seconds=r.randint(3600, 5 * 86400)) if r.random() < 0.5 else None
    return OpenOrderFacts(
        order_id=9_000_000_000 + world.day_index(day) * 10_000 + k + 1,
        transaction_id=str(uuid.UUID(int=r.getrandbits(128), version=4)),
        device=r.choice(DEVICES), vintage=r.choice((2022, 2023, 2024)), side=r.choice(("Buy", "Sell")),
        currency="SGD" if r.random() < 0.1 else "USD", quantity=Decimal(r.randint(1, 200)),
        price=money(Decimal(r.randint(50, 1500)) / 100), placed=placed, cancelled=cancelled)


def iter_invoices(world: World, *, include_future: bool = False):
    """Every invoice created by ``world.as_of`` (with ``include_future``: also those of the as_of day
    created later, whose trades may already exist)."""
    as_of = world.as_of
    for day in world.days(EPOCH, as_of.date() + dt.timedelta(days=1)):
        for i in range(world.daily_count(PROVIDER, day, BASE_PER_DAY)):
            f = facts(world, day, i)
            if include_future or f.created <= as_of:
                yield f


def facts_by_number(world: World, number: str) -> InvoiceFacts | None | bool:
    """The invoice behind a number; ``None`` if it does not exist (yet); ``False`` if another org's."""
    m = re.fullmatch(r"INV-([A-Z]+)-(\d{4}-\d{2}-\d{2})-(\d{5})", number or "")
    if not m:
        return None
    if m.group(1) not in ORG_DIRECTION:
        return False
    try:
        day = dt.date.fromisoformat(m.group(2))
    except ValueError:
        return None
    i = int(m.group(3)) - 1
    if day < EPOCH or i < 0 or i >= world.daily_count(PROVIDER, day, BASE_PER_DAY):
        return None
    f = facts(world, day, i)
    if f.created > world.as_of or DIRECTIONS[f.direction] != m.group(1):
        return None
    return f


# --- rendering ----------------------------------------------------------------------------------------
def _norm(d: Decimal) -> Decimal:
    """The seed writes ``"Quantity": 90``, ``"SubTotal": 1176.3``: shortest exact form."""
    n = d.normalize()
    return n.quantize(Decimal(1)) if n.as_tuple().exponent > 0 else n


def _fixed(d: Decimal, places: Decimal) -> Decimal:
    """The 2024-10 page writes ``"Quantity": 3.000000``, ``"PayerTaxAmount": 0.00``."""
    return d.quantize(places, rounding=ROUND_HALF_UP)


def _ts7(ts: dt.datetime | None, z: bool) -> str | None:
    """.NET's 7-digit fraction (``2023-07-13T03:49:46.1656485``), with or without ``Z``."""
    if ts is None:
        return None
    ts = ts.astimezone(UTC)
    # isoformat gives "YYYY-MM-DDTHH:MM:SS.ffffff+00:00": keep the first 26 characters
    return f"{ts.isoformat(timespec='microseconds')[:26]}{ts.microsecond % 7}" + ("Z" if z else "")


def _ts_short(ts: dt.datetime, digits: int) -> str:
    """``CreatedTime``/``UpdatedTime``: 2-3 fractional digits, no Z (``2023-07-13T03:49:46.43``)."""
    return ts.astimezone(UTC).isoformat(timespec="microseconds")[: 20 + digits]


def _due(d: dt.date, z: bool) -> str:
    return f"{d.isoformat()}T23:59:59.9999999" + ("Z" if z else "")


def _party(n: int | None) -> dict[str, Any]:
    if n is None:
        return dict(ACCOUNT)
    return {"CompanyName": customer_name(n), "RegistrationNumber": customer_id(n),
            "Address": f"{n} Jalan Sudirman, Jakarta", "Country": "Indonesia" if n % 3 else "Singapore"}


def row_state(f: InvoiceFacts, as_of: dt.datetime) -> tuple[str, dt.datetime, dt.datetime | None]:
    """All that a row (and the detail) reads of ``as_of``: (status, updated, paid_at). The memo keys a
    row's bytes by it, so it must stay the only way ``render`` looks at the clock."""
    st = f.state(as_of)
    return st["status"], st["updated"], st["paid_at"]


def render(f: InvoiceFacts, as_of: dt.datetime) -> dict[str, Any]:
    """The list row, in the invoice's shape."""
    status, updated, paid_at = row_state(f, as_of)
    if f.legacy:
        return {
            "InvoiceNumber": f.number, "Quantity": _norm(f.quantity), "Total": f.total,
            "IssuedDate": _ts7(f.issued, False), "DueDate": _due(f.due, False),
            "PaidDate": _ts7(paid_at, False), "Type": f.type, "TypeDescription": f.type,
            "SubTotal": _norm(f.subtotal), "TotalFee": _norm(f.fee), "TotalReceivable": _norm(f.total_receivable),
            "CreatedTime": _ts_short(f.created, 2), "UpdatedTime": _ts_short(updated, 2),
            "CurrencyCode": f.currency, "CurrencySymbolic": CURRENCY_SYMBOLS[f.currency],
            "TaxPercent": _norm(f.tax_rate), "TaxAmount": _norm(f.tax), "FeeCodeNumber": f.fee_code,
            "Status": status, "StatusDescription": STATUS_DESCRIPTIONS[status],
        }
    return {
        "InvoiceNumber": f.number, "Quantity": _fixed(f.quantity, SIX), "Total": f.total,
        "IssuedDate": f"{f.issued.date().isoformat()}T00:00:00.0000000Z", "DueDate": _due(f.due, True),
        "PaidDate": _ts7(paid_at, True),
        "Status": {"Value": status, "Description": STATUS_DESCRIPTIONS[status]},
        "CreatedTime": _ts_short(f.created, 3), "UpdatedTime": _ts_short(updated, 3),
        "WhiteLabelName": f.white_label, "CurrencyCode": f.currency, "FeeCodeNumber": f.fee_code,
        "PayerTaxPercentage": _fixed(f.tax_rate, FOUR), "PayerTaxAmount": _fixed(f.tax, Decimal("0.01")),
        "PayeeTaxPercentage": Decimal("0.0000"), "PayeeTaxAmount": Decimal("0.00"),
    }


def render_detail(f: InvoiceFacts, as_of: dt.datetime) -> dict[str, Any]:
    """The detail: the row (same shape) + parties + MainInvoice with its Items."""
    receivable = f.direction == "AccountsReceivable"
    row = render(f, as_of)
    row["Payer"] = _party(f.customer if receivable else None)
    row["Payee"] = _party(None if receivable else f.customer)
    row["MainInvoice"] = {
        "Total": f.total, "SubTotal": _norm(f.subtotal),
        "PayeeTaxAmount": Decimal("0.00"), "PayerTaxAmount": f.tax,
        "PayerSubTotal": _norm(f.net), "PayeeSubTotal": _norm(f.net),
        "Items": [{
            "Quantity": _fixed(it.quantity, SIX), "UnitPrice": it.unit_price, "TotalPrice": it.total,
            "Description": f"I-REC {it.ticker} {it.device[1]} vintage {it.vintage}",
            "TransactionDate": _ts7(it.matched, True), "TransactionId": it.transaction_id,
            "DeviceName": it.device[1], "Vintage": it.vintage, "CountryCode": it.device[2],
            "FuelType": it.device[3],
        } for it in f.items],
    }
    return row


def _tx_state(f: InvoiceFacts, it: ItemFacts, as_of: dt.datetime) -> tuple[str, dt.datetime | None]:
    """A matched trade's status follows its invoice: settled when paid, voided/refunded with it."""
    if it.matched > as_of:
        return "Requested", None
    if f.created > as_of:
        return "Pending", None
    st = f.state(as_of)
    s = st["status"]
    if s in PAID_STATUSES:
        return "Settled", st["paid_at"]
    if s == "Refunded":
        return "Refunded", st["changed_at"]
    if s in ("Cancelled", "Expired"):
        return "Voided", st["changed_at"]
    return "Pending", None


# Markets of the spot exchange by device country; ``MarketIds`` filters by these ids [INF].
MARKET_IDS = {"VN": "1", "ID": "2", "MY": "3", "TH": "4", "PH": "5"}


def _market(device: tuple[str, ...]) -> str:
    return f"{device[2]} I-REC Spot"


def transaction_state(f: InvoiceFacts, it: ItemFacts, as_of: dt.datetime
                      ) -> tuple[str, dt.datetime | None, bool]:
    """All that a matched trade's record reads of ``as_of``: its status, when it finished, and whether its
    invoice exists yet (the memo keys the record's bytes by it)."""
    return (*_tx_state(f, it, as_of), f.created <= as_of)


def render_transaction(f: InvoiceFacts, it: ItemFacts, as_of: dt.datetime) -> dict[str, Any]:
    status, finished, invoiced = transaction_state(f, it, as_of)
    matched = status != "Requested"
    return {
        "OrderId": it.order_id, "TransactionId": it.transaction_id,
        "Status": {"Value": status, "Description": status}, "TickerId": it.ticker,
        "Side": "Sell" if f.direction == "AccountsReceivable" else "Buy", "Type": "Limit",
        "TimeInForce": "GTC", "Price": it.limit_price, "Quantity": _fixed(it.quantity, SIX),
        "MatchedPrice": it.unit_price if matched else None, "UserName": USER_NAME,
        "CurrencyCode": f.currency, "DeviceUniqueId": it.device[0], "MarketName": _market(it.device),
        "InvoiceId": f.number if invoiced else None,
        "CreatedTime": _ts7(it.placed, True), "MatchedTime": _ts7(it.matched, True) if matched else None,
        "FinishedTime": _ts7(finished, True),
    }


def open_order_state(o: OpenOrderFacts, as_of: dt.datetime) -> bool:
    """All that an open order's record reads of ``as_of``: whether it is cancelled yet."""
    return o.cancelled is not None and o.cancelled <= as_of


def render_open_order(o: OpenOrderFacts, as_of: dt.datetime) -> dict[str, Any]:
    cancelled = open_order_state(o, as_of)
    status = "Cancelled" if cancelled else "Requested"
    return {
        "OrderId": o.order_id, "TransactionId": o.transaction_id,
        "Status": {"Value": status, "Description": status}, "TickerId": o.ticker, "Side": o.side,
        "Type": "Limit", "TimeInForce": "GTC", "Price": o.price, "Quantity": _fixed(o.quantity, SIX),
        "MatchedPrice": None, "UserName": USER_NAME, "CurrencyCode": o.currency,
        "DeviceUniqueId": o.device[0], "MarketName": _market(o.device), "InvoiceId": None,
        "CreatedTime": _ts7(o.placed, True), "MatchedTime": None,
        "FinishedTime": _ts7(o.cancelled, True) if cancelled else None,
    }


def iter_transactions(world: World):
    """Every spot transaction placed by ``world.as_of``: (sort time, kind, key) tuples."""
    as_of = world.as_of
    for f in iter_invoices(world, include_future=True):
        for j, it in enumerate(f.items):
            if it.placed <= as_of:
                yield it.placed, "m", (f.day, f.index, j)
    for day in world.days(EPOCH, as_of.date() + dt.timedelta(days=1)):
        for k, o in enumerate(open_orders(world, day)):
            if o.placed <= as_of:
                yield o.placed, "o", (day, k)


def _transaction(world: World, kind: str, key: tuple) -> tuple[Callable[..., dict[str, Any]],
                                                               Callable[..., Hashable], tuple]:
    """A transaction's renderer, its state function (what the renderer reads of ``as_of``) and their
    arguments before ``as_of``: a matched trade ("m", (day, i, j)) or an open order ("o", (day, k))."""
    if kind == "m":
        day, i, j = key
        f = facts(world, day, i)
        return render_transaction, transaction_state, (f, f.items[j])
    day, k = key
    return render_open_order, open_order_state, (open_order(world, day, k),)


def transaction_record(world: World, kind: str, key: tuple) -> dict[str, Any]:
    render_one, _state, args = _transaction(world, kind, key)
    return render_one(*args, world.as_of)


def transaction_record_state(world: World, kind: str, key: tuple) -> Hashable:
    """All that ``transaction_record(world, kind, key)`` reads of ``world.as_of``."""
    _render, state_of, args = _transaction(world, kind, key)
    return state_of(*args, world.as_of)


def record_config(world: World) -> tuple[int, int | None]:
    """The config a record's bytes depend on (``RecordKey.config``): its facts follow from these."""
    return world.seed, world.config.lines_per_invoice


def invoice_row(world: World, day: dt.date, i: int) -> dict[str, Any]:
    return render(facts(world, day, i), world.as_of)


def invoice_detail(world: World, day: dt.date, i: int) -> dict[str, Any]:
    return render_detail(facts(world, day, i), world.as_of)


# --- truth --------------------------------------------------------------------------------------------
def truth(world: World, start: dt.datetime | None = None, end: dt.datetime | None = None) -> dict[str, Any]:
    """Ground truth of a full extraction (any window: REDEX has no date filter, every run is a full
    sweep of what exists as of ``world.as_of``; ``start``/``end`` are accepted and ignored).

    ``counts``/``sums`` per stream (raw column names); ``receivables`` by the rule of the module
    docstring. Extras for the tests: ``lines`` (MainInvoice.Items: rows, TotalPrice), ``orders_amount``
    (sum of coalesce(MatchedPrice, Price) x Quantity), ``by_status``, ``by_direction`` and
    ``status_forms`` (rows with Status as a string vs as an object).
    """
    zero = Decimal("0.00")
    as_of = world.as_of
    inv = {"Total": zero, "MainInvoiceSubTotal": zero, "MainInvoicePayerTaxAmount": zero}
    lines = {"rows": 0, "TotalPrice": zero, "Quantity": Decimal("0")}
    by_status: dict[str, dict[str, Any]] = {}
    by_direction: dict[str, dict[str, Any]] = {}
    forms = Counter({"string": 0, "object": 0})
    receivables: dict[tuple[str, str], dict[str, Decimal]] = {}
    n_invoices = 0
    for f in iter_invoices(world):
        status = f.state(as_of)["status"]
        total = f.total
        n_invoices += 1
        inv["Total"] += total
        inv["MainInvoiceSubTotal"] += f.subtotal
        inv["MainInvoicePayerTaxAmount"] += f.tax
        lines["rows"] += len(f.items)
        lines["TotalPrice"] += f.subtotal
        lines["Quantity"] += f.quantity
        forms["string" if f.legacy else "object"] += 1
        for group, key in ((by_status, status), (by_direction, f.direction)):
            g = group.setdefault(key, {"invoices": 0, "Total": zero})
            g["invoices"] += 1
            g["Total"] += total
        if f.direction != "AccountsReceivable":
            continue
        c = receivables.setdefault((f"C{f.customer:03d}", f.currency),
                                   {"invoiced": zero, "paid": zero, "open": zero})
        if status in VOID_STATUSES:
            continue
        paid = total if status in PAID_STATUSES else zero
        c["invoiced"] += total
        c["paid"] += paid
        c["open"] += total - paid
    orders = {"Price": zero, "MatchedPrice": zero, "Quantity": Decimal("0")}
    orders_amount = zero
    tx_status: Counter = Counter()
    n_orders = 0
    for _t, kind, key in iter_transactions(world):
        rec = transaction_record(world, kind, key)
        n_orders += 1
        orders["Price"] += rec["Price"]
        orders["Quantity"] += rec["Quantity"]
        if rec["MatchedPrice"] is not None:
            orders["MatchedPrice"] += rec["MatchedPrice"]
        orders_amount += (rec["MatchedPrice"] if rec["MatchedPrice"] is not None else rec["Price"]) * rec["Quantity"]
        tx_status[rec["Status"]["Value"]] += 1
    return {
        "provider": PROVIDER,
        "counts": {"invoices": n_invoices, "orders": n_orders},
        "sums": {"invoices": inv, "orders": orders},
        "receivables": receivables,
        "lines": lines,
        "orders_amount": orders_amount,
        "orders_by_status": dict(tx_status),
        "by_status": by_status,
        "by_direction": by_direction,
        "status_forms": dict(forms),
    }


# --- HTTP ---------------------------------------------------------------------------------------------
def _dumps(payload: Any) -> bytes:
    """JSON with decimals written as exact JSON *numbers* (the API's decimal(18,6), never floats)."""
    return dumps(payload, decimal=exact_number, ensure_ascii=True, allow_nan=True)


def envelope(data: Any = None, *, status: int = 200, message: str = "Success", meta: Any = None,
             errors: list | None = None, headers: dict[str, str] | None = None) -> Response:
    """The seed's envelope; ``data`` may be JSON bytes already (memoised records), written as is."""
    body = {"Data": data, "Meta": meta, "Errors": errors, "StatusCode": status, "Message": message}
    return Response(splice(body, decimal=exact_number, ensure_ascii=True, allow_nan=True), status_code=status,
                    media_type="application/json", headers=headers)


def bad_request(*errors: tuple[str, str]) -> Response:
    # The seed's 400 prints Errors null; the envelope allows "null|[error objects]" and the object
    # schema was not captured: {Field, Message} [INF].
    return envelope(status=400, message="Bad request",
                    errors=[{"Field": f, "Message": m} for f, m in errors] or None)


UNAUTHORIZED = {"status": 401, "message": "Unauthorized"}




_COUNTERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def counters(state) -> Counter:
    """Token requests the simulator answered for ``state``: ``api_key`` grants, ``refresh`` grants,
    ``refused`` (tests read it)."""
    return _COUNTERS.setdefault(state, Counter())


def _multi(q, *names: str) -> list[str]:
    out: list[str] = []
    for n in names:
        for v in q.getlist(n):
            out += [p for p in v.split(",") if p]
    return out


def _page_params(q) -> tuple[int, int] | Response:
    try:
        page = int(q.get("CurrentPage", 1))
        size = int(q.get("ItemsPerPage", DEFAULT_ITEMS_PER_PAGE))
    except ValueError:
        return bad_request(("CurrentPage", "CurrentPage and ItemsPerPage must be numbers."))
    if page < 1 or size < 1:
        return bad_request(("CurrentPage", "CurrentPage and ItemsPerPage must be at least 1."))
    return page, min(size, MAX_ITEMS_PER_PAGE)


def make_app(state, *, memo_bytes: int | None = None) -> FastAPI:
    """The REDEX public API v2 app; ``state`` is the shared SimState (world, faults, credentials).

    Invoice rows, invoice details and transactions are served from a memo of their JSON bytes
    (``app.state.record_memo``, bounded by ``memo_bytes``, default ``MEMO_BYTES``, 0: off) keyed by
    :class:`RecordKey`: the record and its state, not ``as_of``, so the daily sweep after a move of the
    clock renders only the records that changed. The memo is off on the real clock."""
    app = FastAPI(title="REDEX public API v2 simulator")
    cache = QueryCache()
    memo = BytesMemo(MEMO_BYTES if memo_bytes is None else memo_bytes)
    app.state.record_memo = memo  # read by tests, benchmarks and GET /_sim/memo/redex
    count = counters(state)

    def faults():
        return state.faults[PROVIDER]

    def world_key(world: World) -> tuple:
        c = world.config
        return (c.seed, c.scale, c.as_of, c.lines_per_invoice, tuple(sorted(c.per_day.items())))

    def serve(world: World, request_memo: BytesMemo | None, keys: list[RecordKey]) -> list[bytes]:
        """The JSON bytes of the records ``keys`` name (``RecordKey.render(world, *ident)``)."""
        return records(request_memo, keys, lambda k: _dumps(k.render(world, *k.ident)))

    def auth_error(request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        scheme, _, rest = header.partition(" ")
        # The 2024-10 page sends "Bearer <token>"; the seed shows the bare "{{token}}".
        token = rest.strip() if scheme.lower() == "bearer" else header.strip()
        if not token.startswith("redex-at-"):
            return envelope(**UNAUTHORIZED)
        verdict = state.tokens[PROVIDER].check(token)
        if verdict == "ok":
            return None
        return envelope(**UNAUTHORIZED, headers={
            "WWW-Authenticate": f'Bearer error="invalid_token", error_description="The token {verdict}"'})

    async def json_body(request: Request) -> dict | Response:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            return bad_request(("body", "The request body is not valid JSON."))
        if not isinstance(body, dict):
            return bad_request(("body", "A JSON object is required."))
        return body

    def issue() -> dict[str, str]:
        ttl = faults().token_ttl or ACCESS_TTL
        book = state.tokens[PROVIDER]
        return {"AccessToken": book.issue("redex-at", ttl), "RefreshToken": book.issue("redex-rt", REFRESH_TTL),
                "ExpiresIn": f"{ttl:g}", "TokenType": "Bearer", "Scope": SCOPE}

    def check_fields(body: dict, names: tuple[str, ...]) -> Response | None:
        errors = []
        for n in names:
            v = body.get(n)
            if not isinstance(v, str) or not v:
                errors.append((n, f"The {n} field is required."))
            elif len(v) > 36 and n != "RefreshToken":
                errors.append((n, f"The field {n} must be a string with a maximum length of 36."))
        return bad_request(*errors) if errors else None

    def client_ok(body: dict) -> bool:
        creds = state.credentials[PROVIDER]
        return body.get("ClientId") == creds["client_id"] and body.get("ClientSecret") == creds["client_secret"]

    @app.post("/public/v2/connect/token")
    async def token(request: Request):
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        if (err := check_fields(body, ("ApiKey", "GrantType", "ClientId", "ClientSecret"))) is not None:
            return err
        if body["GrantType"] != "api_key":
            return bad_request(("GrantType", "GrantType must be 'api_key'."))
        if not client_ok(body) or body["ApiKey"] != state.credentials[PROVIDER]["api_key"]:
            count["refused"] += 1
            return envelope(**UNAUTHORIZED)
        count["api_key"] += 1
        return envelope(issue())

    @app.post("/public/v2/connect/token/refresh")
    async def refresh(request: Request):
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        if (err := check_fields(body, ("RefreshToken", "GrantType", "ClientId", "ClientSecret"))) is not None:
            return err
        if body["GrantType"] != "refresh_token":
            return bad_request(("GrantType", "GrantType must be 'refresh_token'."))
        rt = body["RefreshToken"]
        if not client_ok(body) or not rt.startswith("redex-rt-") or state.tokens[PROVIDER].check(rt) != "ok":
            count["refused"] += 1
            return envelope(**UNAUTHORIZED)
        count["refresh"] += 1
        return envelope(issue())

    def paged(world: World, request_memo: BytesMemo | None, keys: list[RecordKey], page: int, size: int
              ) -> Response:
        total = len(keys)
        pages = math.ceil(total / size)
        lo = (page - 1) * size
        f = faults()
        if f.drift and page > 1:
            lo -= 1  # a record was inserted ahead of this page while the client paged: one repeats
        chunk = keys[lo: lo + size]
        if f.duplicates and page > 1 and chunk and lo >= 1:
            chunk = [keys[lo - 1], *chunk]  # the previous page's last record again
        meta = {"CurrentPage": page, "TotalPage": pages, "ItemsPerPage": size, "TotalItems": total}
        return envelope(array(serve(world, request_memo, chunk)), meta=meta)

    @app.get("/public/v2/invoices")
    def list_invoices(request: Request):
        if (err := auth_error(request)) is not None:
            return err
        q = request.query_params
        pp = _page_params(q)
        if isinstance(pp, Response):
            return pp
        page, size = pp
        statuses = _multi(q, "Statuses", "Statuses[]", "Status")
        types = _multi(q, "Types", "Types[]")
        ttype = q.get("TransactionType") or None
        search = (q.get("Search") or "").strip().upper()
        order_by = q.get("OrderBy") or None
        desc_text = (q.get("IsDecending") or "false").lower()
        errors = [("Statuses", f"'{s}' is not a valid invoice status.") for s in statuses
                  if s not in STATUS_DESCRIPTIONS]
        errors += [("Types", f"'{t}' is not a valid invoice type.") for t in types if t not in TYPES]
        if ttype is not None and ttype not in DIRECTIONS:
            errors.append(("TransactionType", f"'{ttype}' is not a valid transaction type."))
        if order_by is not None and order_by not in ("CreatedDate", "IssuedDate", "InvoiceNumber"):
            errors.append(("OrderBy", f"'{order_by}' is not a sortable field."))
        if desc_text not in ("true", "false"):
            errors.append(("IsDecending", "IsDecending must be true or false."))
        if errors:
            return bad_request(*errors)
        descending = True if order_by is None else desc_text == "true"
        world, request_memo = pinned_world(state.world, memo)

        def compute() -> list[RecordKey]:
            as_of, config = world.as_of, record_config(world)
            rows = []
            for f in iter_invoices(world):
                if ttype and f.direction != ttype:
                    continue
                if types and f.type not in types:
                    continue
                st = row_state(f, as_of)
                if statuses and st[0] not in statuses:
                    continue
                if search and search not in f.number:
                    continue
                sort = {"IssuedDate": (f.issued, f.number), "InvoiceNumber": (f.number,)}.get(
                    order_by or "CreatedDate", (f.created, f.number))
                rows.append((sort, RecordKey(invoice_row, config, (f.day, f.index), st)))
            rows.sort(key=lambda x: x[0], reverse=descending)  # sort keys are unique: keys never compared
            return [k for _s, k in rows]

        keys = cache.get(("inv", world_key(world), tuple(statuses), tuple(types), ttype, search, order_by,
                          descending), compute)
        return paged(world, request_memo, keys, page, size)

    @app.get("/public/v2/invoices/{invoice_number}")
    def get_invoice(invoice_number: str, request: Request):
        if (err := auth_error(request)) is not None:
            return err
        world, request_memo = pinned_world(state.world, memo)
        f = facts_by_number(world, invoice_number)
        if f is False:
            return envelope(status=403, message="Forbidden")
        if f is None:
            return envelope(status=404, message="Not found")
        key = RecordKey(invoice_detail, record_config(world), (f.day, f.index), row_state(f, world.as_of))
        return envelope(serve(world, request_memo, [key])[0])

    @app.get("/public/v2/spot-exchange/transactions")
    def list_transactions(request: Request):
        if (err := auth_error(request)) is not None:
            return err
        q = request.query_params
        pp = _page_params(q)
        if isinstance(pp, Response):
            return pp
        page, size = pp
        markets = _multi(q, "MarketIds", "MarketIds[]")
        statuses = _multi(q, "Statuses", "Statuses[]", "Status")
        side = q.get("Side") or None
        order_by = q.get("OrderBy") or None
        desc_text = (q.get("IsDecending") or "false").lower()
        errors = [("Statuses", f"'{s}' is not a valid transaction status.") for s in statuses
                  if s not in TX_STATUSES]
        if side is not None and side not in ("Buy", "Sell"):
            errors.append(("Side", f"'{side}' is not a valid side."))
        if order_by is not None and order_by != "CreatedTime":
            errors.append(("OrderBy", f"'{order_by}' is not a sortable field."))
        if desc_text not in ("true", "false"):
            errors.append(("IsDecending", "IsDecending must be true or false."))
        if errors:
            return bad_request(*errors)
        descending = True if order_by is None else desc_text == "true"
        world, request_memo = pinned_world(state.world, memo)

        def compute() -> list[RecordKey]:
            config = record_config(world)
            rows = []
            for placed, kind, key in iter_transactions(world):
                if markets or statuses or side:
                    rec = transaction_record(world, kind, key)
                    if markets and MARKET_IDS[rec["DeviceUniqueId"][:2]] not in markets:
                        continue
                    if statuses and rec["Status"]["Value"] not in statuses:
                        continue
                    if side and rec["Side"] != side:
                        continue
                rows.append(((placed, kind, key), RecordKey(transaction_record, config, (kind, key),
                                                            transaction_record_state(world, kind, key))))
            rows.sort(key=lambda x: x[0], reverse=descending)  # sort keys are unique: keys never compared
            return [k for _s, k in rows]

        keys = cache.get(("tx", world_key(world), tuple(markets), tuple(statuses), side, descending), compute)
        return paged(world, request_memo, keys, page, size)

    return app
