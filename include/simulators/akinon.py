"""Akinon OMS simulator (seed 004, providers.md section 5): invoices.

``GET /api/v1/oms/invoices/`` and ``/api/v1/oms/invoices/{id}/``: Django REST Framework page-number
pagination (``count``/``next``/``previous``/``results``, ``?limit=&page=``, 1-based, ``next`` null on the
last page, 404 ``{"detail": "Invalid page."}`` past it), ``Authorization: Token <key>`` (401
``{"detail": ...}`` otherwise), django-filter ``modified_date__gte``/``modified_date__lt``, records shaped
exactly like the seed's example: money and rates as strings, nested ``invoiceitem_set``, ``channel``,
``address``, ``order``.

The business: e-commerce invoices in TRY. Most orders are prepaid at checkout (``order.payment_type``
set); about a quarter are on open account (``payment_type`` null) and get paid days later, some never.
Invoices move ``waiting`` -> ``approved``; about 5% are ``cancelled``. Every change moves
``modified_date``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from simulators.world import UTC, World, customer_name, money, rng, ts_in_day

PROVIDER = "akinon"
BASE_PER_DAY = 20
MAX_LAG = dt.timedelta(days=75)  # no event happens later than this after an invoice is created
CURRENCY = "TRY"
TAX_RATES = ("1.00", "10.00", "20.00")
CHANNELS = {1: "web", 2: "mobile-app", 3: "marketplace"}
STATES = {"waiting": ("Waiting", "100", 25), "approved": ("Approved", "400", 26),
          "cancelled": ("Cancelled", "450", 27)}
CREDENTIALS = {"token": "akinon-sim-token"}  # demo credential of the simulator only


def _iso(ts: dt.datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


def lines(world: World, f: InvoiceFacts) -> list[dict[str, Any]]:
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
        out.append({
            "id": f.id * 10 + j + 1,
            "created_date": _iso(created),
            "modified_date": _iso(created),
            "tax_rate": str(rate),
            "tax_amount": str(tax),
            "discount_rate": str(discount_rate),
            "discount_amount": str(discount),
            "interest_rate": "0.00",
            "interest_amount": None,
            "total_amount": str(total),
            "net_amount": str(total - discount),
            "order_item": f.id * 10 + j + 1,
        })
    return out


def invoice_total(items: list[dict[str, Any]]) -> Decimal:
    """What the customer owes: the sum of the lines' net amounts (after discounts, tax included)."""
    return sum((Decimal(i["net_amount"]) for i in items), Decimal("0.00"))


def render(world: World, f: InvoiceFacts, as_of: dt.datetime) -> dict[str, Any]:
    st = f.state(as_of)
    state_name, enum_value, state_id = STATES[st["status"]]
    cust_name = customer_name(f.customer).split(" ", 1)
    channel_created = dt.datetime(2024, 6, 1, 9, 0, f.channel, tzinfo=UTC)
    return {
        "id": f.id,
        "invoice_type": "purchased",
        "status": st["status"],
        "channel": {
            "id": f.channel, "channel_type": "channel", "created_date": _iso(channel_created),
            "modified_date": _iso(channel_created), "omnitron_id": f.channel + 100,
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
        "order": {
            "id": f.id,
            "state": {"id": state_id, "next_states": [], "previous_states": [],
                      "created_date": "2019-03-20T13:20:08.201990Z", "modified_date": "2019-03-20T13:20:08.202020Z",
                      "name": state_name, "config": {}, "enum_class": "OrderStatus",
                      "enum_value": enum_value, "content_type": 17},
            "payment_type": st["payment_type"],
            "created_date": _iso(f.created - dt.timedelta(minutes=5)),
            "modified_date": _iso(st["modified"]),
            "omnitron_id": 30_000 + f.id,
            "number": f"3783{f.id:014d}",
            "date_placed": (f.created - dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "channel": f.channel,
            "customer": f.customer,
            "shipping_address": f.customer * 10 + 2,
            "billing_address": f.customer * 10 + 1,
        },
        "package_number": f"PCK_{f.id}_1",
        "created_date": _iso(f.created),
        "modified_date": _iso(st["modified"]),
        "number": f"{9_000_000_000 + f.id}",
    }


def iter_facts(world: World, start: dt.datetime | None, end: dt.datetime | None):
    """Every invoice that exists as of ``world.as_of`` and whose modified_date is in [start, end)."""
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
    """Ground truth for a full extraction of [start, end): counts and exact money."""
    out: dict[str, Any] = {"provider": PROVIDER, "invoices": 0, "invoice_lines": 0,
                           "total_amount": Decimal("0.00"), "by_status": {}, "by_customer": {}}
    as_of = world.as_of
    for f in iter_facts(world, start, end):
        items = lines(world, f)
        total = invoice_total(items)
        st = f.state(as_of)
        paid = total if st["payment_type"] is not None and st["status"] != "cancelled" else Decimal("0.00")
        open_ = Decimal("0.00") if st["status"] == "cancelled" else total - paid
        out["invoices"] += 1
        out["invoice_lines"] += len(items)
        out["total_amount"] += total
        s = out["by_status"].setdefault(st["status"], {"invoices": 0, "total_amount": Decimal("0.00")})
        s["invoices"] += 1
        s["total_amount"] += total
        c = out["by_customer"].setdefault((f"C{f.customer:03d}", CURRENCY), {
            "invoiced": Decimal("0.00"), "paid": Decimal("0.00"), "open": Decimal("0.00")})
        if st["status"] != "cancelled":
            c["invoiced"] += total
        c["paid"] += paid
        c["open"] += open_
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


class _QueryCache:
    """The ids matching one filter, computed once and paged many times (LRU)."""

    def __init__(self, size: int = 16):
        self._d: OrderedDict = OrderedDict()
        self._size = size

    def get(self, key, compute):
        if key in self._d:
            self._d.move_to_end(key)
            return self._d[key]
        value = compute()
        self._d[key] = value
        if len(self._d) > self._size:
            self._d.popitem(last=False)
        return value


def make_app(state) -> FastAPI:
    """The Akinon OMS app; ``state`` is the shared SimState (world, faults, credentials)."""
    app = FastAPI(title="Akinon OMS simulator")
    cache = _QueryCache()

    def auth_error(request: Request) -> JSONResponse | None:
        header = request.headers.get("authorization")
        if not header:
            return JSONResponse({"detail": "Authentication credentials were not provided."}, 401)
        scheme, _, key = header.partition(" ")
        if scheme not in ("Token", "Bearer") or key != state.credentials[PROVIDER]["token"]:
            return JSONResponse({"detail": "Invalid token."}, 401)
        return None

    @app.get("/api/v1/oms/invoices/")
    def list_invoices(request: Request):
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
        world = state.world
        as_of = world.as_of
        faults = state.faults[PROVIDER]
        keys = cache.get((world.config.seed, world.config.scale, as_of, gte, lt),
                         lambda: [(f.day, f.index) for f in iter_facts(world, gte, lt)])
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
        results = [render(world, facts(world, d, i), as_of) for d, i in chunk]
        base = str(request.url.remove_query_params(["page"]))
        sep = "&" if "?" in base else "?"
        nxt = f"{base}{sep}page={page + 1}" if page < pages else None
        prev = None if page == 1 else (f"{base}{sep}page={page - 1}" if page > 2 else base)
        return {"count": count, "next": nxt, "previous": prev, "results": results}

    @app.get("/api/v1/oms/invoices/{invoice_id}/")
    def get_invoice(invoice_id: int, request: Request):
        if (err := auth_error(request)) is not None:
            return err
        world = state.world
        day_index, i = divmod(invoice_id - 1, 10_000)
        day = dt.date(2025, 1, 1) + dt.timedelta(days=day_index)
        if day_index < 0 or i >= world.daily_count(PROVIDER, day, BASE_PER_DAY):
            return JSONResponse({"detail": "Not found."}, 404)
        f = facts(world, day, i)
        if f.created > world.as_of:
            return JSONResponse({"detail": "Not found."}, 404)
        return render(world, f, world.as_of)

    return app
