"""Contract of the IDH API Manager simulator (seed 001, providers.md section 2): what the hook, staging and
demos may rely on.

Auth (Bearer, the 401 body), business errors as HTTP 200 ``success: false``, the two envelopes and
paginators (idhServer ``current_page``/``total_page``; beego ``HasNext``/``p=``), the 30-day order range,
the seed's date encodings (ISO +07:00, DD-MM-YYYY, epoch ms with 0, unix seconds), disappearing optional
keys, store detail under ``results``, the 20-item product list, the list-vs-ext order total, the
coherence of invoices with their orders and payments, ``as_of`` and the faults. Expected numbers come
from the simulator's ``truth()`` and facts.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from simulators import idh

UTC = dt.UTC
WIB = dt.timezone(dt.timedelta(hours=7))
FEB = (dt.datetime(2025, 2, 1, tzinfo=UTC), dt.datetime(2025, 3, 1, tzinfo=UTC))
DDMMYYYY_RE = re.compile(r"^\d\d-\d\d-\d{4}$")
ISO_WIB_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00$")  # "2024-05-03T16:40:41+07:00"


def _get(sim, path: str, token: str | None = None, scheme: str = "Bearer", **params) -> requests.Response:
    token = idh.CREDENTIALS["token"] if token is None else token
    headers = {"Authorization": f"{scheme} {token}".strip()} if token else {}
    return requests.get(f"{sim.base_url('idh')}{path}", params=params, headers=headers, timeout=10)


def _ok(sim, path: str, **params) -> dict:
    r = _get(sim, path, **params)
    assert r.status_code == 200, r.text
    body = r.json(parse_float=Decimal)
    assert body["success"] is True, body
    return body


def _unix(first: dt.date, last: dt.date) -> str:
    lo = dt.datetime.combine(first, dt.time(), WIB)
    hi = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), WIB)
    return f"{int(lo.timestamp())}-{int(hi.timestamp()) - 1}"


# --- auth and errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("token,scheme", [("", "Bearer"), ("not-the-token", "Bearer"),
                                          (idh.CREDENTIALS["token"], ""), (idh.CREDENTIALS["token"], "Token")])
def test_bad_or_missing_bearer_token_is_401_with_the_seed_body(sim, token, scheme):
    r = _get(sim, "/v1/invoice", token=token, scheme=scheme)
    assert r.status_code == 401
    assert r.json() == {"error": "invalid token - error parse token", "success": False}
    assert "beegoServer:2.0.0" in r.headers["server"]  # uvicorn prepends its own name


def test_ping_needs_the_token_and_answers_success(sim):
    assert _ok(sim, "/v1/ping") == {"success": True}
    assert _get(sim, "/v1/ping", token="nope").status_code == 401


def test_business_errors_are_http_200_with_success_false(sim):
    cases = [
        ("/v1/invoice/detail/7690941911", {}, "Data dengan nomer tagihan 7690941911 tidak ditemukan"),
        ("/v1/order", {"date": "01012025-01022025"}, "rentang tanggal maksimal 30 hari"),
        ("/v1/order", {"date": "2025-01-01/2025-01-31"}, "format tanggal harus DDMMYYYY-DDMMYYYY"),
        ("/v1/order/po/123", {}, "order dengan po 123 tidak ditemukan"),
        ("/v1/product", {"name": "po"}, "parameter name minimal 3 huruf"),
        ("/v1/store/id/42", {}, "toko dengan id 42 tidak ditemukan"),
        ("/v1/invoice/payment/history", {"payment_type": "cash"}, "payment_type harus digital atau manually"),
    ]
    for path, params, message in cases:
        r = _get(sim, path, **params)
        assert (r.status_code, r.json()) == (200, {"error": message, "success": False}), path


# --- orders ----------------------------------------------------------------------------------------------
def test_order_range_is_at_most_30_days_as_in_the_seed_example(sim):
    # seed: date=01052024-31052024 (end - start = 30 days) is accepted; 31 days is not
    world = sim.state.world
    want = idh.truth(world, dt.datetime(2025, 1, 1, tzinfo=UTC), dt.datetime(2025, 2, 1, tzinfo=UTC))
    assert _ok(sim, "/v1/order", date="01012025-31012025")["paginator"]["data_count"] == want["counts"]["orders"]
    assert _get(sim, "/v1/order", date="01012025-01022025").json()["success"] is False


def test_order_list_envelope_pages_and_row_shape(sim):
    world = sim.state.world
    want = idh.truth(world, *FEB)["counts"]["orders"]
    first = _ok(sim, "/v1/order", date="01022025-28022025")
    pages = math.ceil(want / idh.ORDER_PAGE_SIZE)
    assert first["paginator"] == {"current_page": 1, "data_count": want, "total_page": pages}
    rows = list(first["results"])
    for page in range(2, pages + 1):
        body = _ok(sim, "/v1/order", date="01022025-28022025", page=page)
        assert body["paginator"]["current_page"] == page
        rows += body["results"]
    expected = [f for f in idh.iter_orders(world, dt.date(2025, 2, 1), dt.date(2025, 2, 28))]
    assert [r["po"] for r in rows] == [f.po for f in expected]
    assert set(rows[0]) == {"customer_code", "date", "distributor_id", "order_note", "pickup_point", "po",
                            "principal_name", "status", "store_code", "store_id", "store_name", "total"}
    for r, f in zip(rows, expected, strict=True):
        assert ISO_WIB_RE.match(r["date"]) and dt.datetime.fromisoformat(r["date"]) == f.created
        assert isinstance(r["po"], str) and isinstance(r["store_id"], str)
        assert r["store_id"] == idh.customer_id(f.customer)
        assert Decimal(r["total"]) == f.placed_total
        assert r["status"] == f.status(world.as_of)
    assert _get(sim, "/v1/order", date="01022025-28022025", page=0).json()["paginator"]["current_page"] == 1


def test_order_status_filter(sim):
    world = sim.state.world
    orders = list(idh.iter_orders(world, dt.date(2025, 2, 1), dt.date(2025, 2, 28)))
    by = {s: sum(f.status(world.as_of) == s for f in orders) for s in ("open", "confirmed", "canceled")}
    assert all(by.values())  # every state occurs in a month
    for status, n in [("open", by["open"]), ("confirmed", by["confirmed"]),
                      ("noncanceled", len(orders) - by["canceled"])]:
        assert _ok(sim, "/v1/order", date="01022025-28022025", status=status)["paginator"]["data_count"] == n


def test_ext_detail_carries_confirmed_values_the_list_total_does_not(sim):
    world = sim.state.world
    shorted = next(f for f in idh.iter_orders(world, dt.date(2025, 2, 1), dt.date(2025, 2, 28))
                   if f.status(world.as_of) == "confirmed" and f.confirmed_total != f.placed_total)
    ext = _ok(sim, f"/v1/order/po/{shorted.po}/ext")["object"]
    plain = _ok(sim, f"/v1/order/po/{shorted.po}")["object"]
    products = [p for item in ext["items"] for p in item["products"]]
    assert Decimal(ext["total"]) == sum(Decimal(p["sub_total"]) for p in products) == shorted.confirmed_total
    assert Decimal(plain["total"]) == sum(Decimal(d["sub"]) for d in plain["order_detail"]) == shorted.placed_total
    assert ext["total"] != plain["total"]
    assert ext["created_on_date"] == shorted.created.astimezone(WIB).strftime("%d-%m-%Y")
    assert DDMMYYYY_RE.match(ext["created_on_date"])
    assert (ext["order_status"], ext["status_confirmedorder"]) == ("Confirmed PO", "confirm")
    # ext products have no product_id; the plain detail maps ordered_product_id -> product_id
    assert "product_id" not in products[0]
    assert sorted(p["orderedproduct_id"] for p in products) == sorted(d["ordered_product_id"]
                                                                     for d in plain["order_detail"])
    assert plain["items"] == len(plain["order_detail"])  # an int in the plain detail, a list in ext
    assert {d["product_id"] for d in plain["order_detail"]} <= set(idh.PRODUCTS_BY_ID)


# --- stores and products ---------------------------------------------------------------------------------
def test_store_list_pages_of_10_and_detail_under_results(sim):
    ids = []
    for page in range(1, 5):
        body = _ok(sim, "/v1/store", page=page)
        assert body["paginator"] == {"current_page": page, "data_count": 40, "total_page": 4}
        assert all(set(r) == {"name", "store_id"} for r in body["results"])
        ids += [r["store_id"] for r in body["results"]]
    assert ids == [idh.customer_id(n) for n in range(1, 41)]
    detail = _ok(sim, f"/v1/store/id/{idh.customer_id(7)}")
    assert set(detail) == {"results", "success"}  # seed: "results" holds an object here, not "object"
    assert set(detail["results"]) == {"address", "dmsinfo", "emails", "name", "phones", "storetype"}
    assert detail["results"]["emails"] is None and detail["results"]["phones"] is None  # nulls, seed
    assert sum(a["is_default"] for a in detail["results"]["address"]) == 1


def test_product_list_shows_at_most_20_items_10_a_page(sim):
    first = _ok(sim, "/v1/product")
    assert first["paginator"] == {"current_page": 1, "data_count": 20, "total_page": 2}
    assert len(first["results"]) == 10 and len(_ok(sim, "/v1/product", page=2)["results"]) == 10
    assert _ok(sim, "/v1/product", page=3)["results"] == []
    assert len(idh.CATALOGUE) > 20  # the catalogue cannot be enumerated through the list
    pocari = [p for p in idh.CATALOGUE if "pocari" in p.name.lower()]
    body = _ok(sim, "/v1/product", name="Pocari")
    assert [r["product_id"] for r in body["results"]] == [p.product_id for p in pocari]
    p = pocari[0]
    assert _ok(sim, f"/v1/product/id/{p.product_id}")["object"] == {
        "description": p.description, "internal_code": p.internal_code, "measure_unit": p.measure_unit,
        "name": p.name, "price": p.price, "principal": p.principal.name, "product_id": p.product_id}


# --- returns ---------------------------------------------------------------------------------------------
def test_returns_epoch_ms_with_zero_int_ids_and_page_zero(sim):
    world = sim.state.world
    want = idh.truth(world, *FEB)["counts"]["returns"]
    body = _ok(sim, "/v1/returnexchange", date="01022025-28022025", include_items="true",
               is_open_only="false", page=0, limit=500)
    assert body["paginator"] == {"current_page": 1, "data_count": want, "total_page": 1}  # limit capped at 100
    rows = body["results"]
    assert len(rows) == want
    facts = {f.id: f for f in idh.iter_returns(world, dt.date(2025, 2, 1), dt.date(2025, 2, 28))}
    assert all(isinstance(r["id"], int) for r in rows)
    for r in rows:
        f = facts[r["id"]]
        assert r["created_on_milli"] == int(f.created.timestamp() * 1000)
        state = f.state(world.as_of)
        assert (r["confirmed_on_milli"] == 0) == (state in ("open", "canceled"))
        assert (r["canceled_on_milli"] == 0) == (state != "canceled")
        approved = sum(Decimal(i["buying_price"]) * s["confirmed_quantity"] for i in r["items"]
                       for s in i["statuses"] if s["request_status"] == "approved")
        assert approved == f.approved_value(world.as_of)
    assert {r["is_canceled"] for r in rows} == {True, False}
    no_items = _ok(sim, "/v1/returnexchange", date="01022025-28022025", limit=100)["results"]
    assert all("items" not in r for r in no_items)
    open_only = _ok(sim, "/v1/returnexchange", date="01022025-28022025", is_open_only="true", limit=100)
    assert open_only["paginator"]["data_count"] == sum(
        f.state(world.as_of) in ("open", "confirmed") for f in facts.values())


# --- invoices and payments (beego) -----------------------------------------------------------------------
def test_invoice_list_beego_paginator_reads_p_not_page(sim):
    world = sim.state.world
    want = idh.truth(world, *FEB)["counts"]["invoices"]
    rng = _unix(dt.date(2025, 2, 1), dt.date(2025, 2, 28))
    first = _ok(sim, "/v1/invoice", limit=10, page=1, unixtime_range=rng)
    pag = first["paginator"]
    assert first["data_count"] == want
    assert (pag["HasNext"], pag["HasPrev"], pag["Page"], pag["PageNums"], pag["PerPageNums"]) == (
        True, False, 1, math.ceil(want / 10), 10)
    nxt = parse_qs(urlsplit(pag["PageLinkNext"]).query)
    assert (nxt["p"], nxt["page"], nxt["unixtime_range"]) == (["2"], ["1"], [rng])  # seed: page stays, p moves
    assert _ok(sim, "/v1/invoice", limit=10, page=2, unixtime_range=rng)["paginator"]["Page"] == 1  # ignored
    ids = []
    for p in range(1, pag["PageNums"] + 1):
        body = _ok(sim, "/v1/invoice", limit=10, p=p, unixtime_range=rng)
        assert body["paginator"]["Page"] == p
        assert body["paginator"]["HasNext"] is (p < pag["PageNums"])
        ids += [r["id"] for r in body["results"]]
    assert ids == [i.id for i in idh.iter_invoices(world, dt.date(2025, 2, 1), dt.date(2025, 2, 28))]
    assert _ok(sim, "/v1/invoice")["paginator"]["PerPageNums"] == 24  # seed: limit defaults to 24


def test_unixtime_range_is_inclusive_on_seconds(sim):
    world = sim.state.world
    inv = next(idh.iter_invoices(world, dt.date(2025, 2, 10), dt.date(2025, 2, 10)))
    t = int(inv.created.timestamp())
    for rng, found in [(f"{t}-{t}", True), (f"{t + 1}-{t + 100}", False), (f"{t - 100}-{t - 1}", False)]:
        ids = [r["id"] for r in _ok(sim, "/v1/invoice", limit=100, unixtime_range=rng)["results"]]
        assert (inv.id in ids) is found, rng


def test_invoices_cover_their_orders_and_optional_keys_disappear(sim):
    world = sim.state.world
    as_of = world.as_of
    invoices = list(idh.iter_invoices(world, dt.date(2025, 1, 1), dt.date(2025, 2, 28)))
    unpaid = next(i for i in invoices if not i.payments_as_of(as_of))
    settled = next(i for i in invoices if i.status(as_of) == "Dilunasi Secara Manual" and i.total_retur)
    row = _ok(sim, f"/v1/invoice/detail/{unpaid.id}")["object"]
    assert "list_payment" not in row and "list_payments" not in row  # absent, not null
    assert (row["status"], row["is_select_payment"]) == ("Belum Dibayar", False)
    row = _ok(sim, f"/v1/invoice/detail/{settled.id}")["object"]
    assert row["status"] == "Dilunasi Secara Manual" and row["is_paid"] is True
    assert DDMMYYYY_RE.match(row["created_on"]) and DDMMYYYY_RE.match(row["due_date"])
    assert row["list_payment"].endswith(", Retur")  # the return credit is named among the methods (seed)
    paid = sum(Decimal(p["total"]) for p in row["list_payments"])
    assert paid + Decimal(row["total_retur"]) == Decimal(row["subtotal"]) == settled.subtotal
    assert [p["title"] for p in row["list_payments"]] == [
        f"Pembayaran ke-{k}" for k in range(len(row["list_payments"]), 0, -1)]  # newest first
    assert row["list_payments"][0]["outstanding_balance"] == 0
    # an invoice bills whole orders: its subtotal is the sum of their ext totals
    exts = [_ok(sim, f"/v1/order/po/{po}/ext")["object"] for po in row["order_ids"]]
    assert sum(Decimal(e["total"]) for e in exts) == Decimal(row["subtotal"])
    assert all(e["status_confirmedorder"] == "confirm" for e in exts)
    assert row["order_ids_formatted"] == ", ".join(row["order_ids"])


def test_payment_history_variants_split_digital_and_manual(sim):
    world = sim.state.world
    rng = _unix(dt.date(2025, 2, 1), dt.date(2025, 2, 28))
    want = idh.truth(world, *FEB)
    rows = {}
    for ptype in ("digital", "manually"):
        body = _ok(sim, "/v1/invoice/payment/history", payment_type=ptype, limit=100, unixtime_range=rng)
        got = body["results"]
        p = 2
        while body["paginator"]["HasNext"]:
            body = _ok(sim, "/v1/invoice/payment/history", payment_type=ptype, limit=100, p=p,
                       unixtime_range=rng)
            got += body["results"]
            p += 1
        rows[ptype] = got
    assert {r["paymentchannel_name"] for r in rows["digital"]} == {"KoinWorks", "QRIS"}
    assert {r["paymentchannel_name"] for r in rows["manually"]} == {"Cash On Delivery (COD)", "Transfer Manual"}
    every = rows["digital"] + rows["manually"]
    assert len({r["id"] for r in every}) == len(every) == want["counts"]["payments"]
    assert sum(Decimal(r["total_payment"]) for r in every) == want["sums"]["payments"]["total_payment"]
    expired = [r for r in every if r["status_translate"] == "Waktu pembayaran habis"]
    assert expired and all(r["total_payment"] == 0 and r["paymentchannel_name"] == "QRIS" for r in expired)
    assert {r["status_translate"] for r in every} == {"Lunas", "Cicil", "Waktu pembayaran habis"}
    assert all(DDMMYYYY_RE.match(r["payment_date"]) for r in every)


# --- truth, time and faults ------------------------------------------------------------------------------
def test_truth_of_consecutive_windows_adds_up(sim):
    world = sim.state.world
    jan, feb = dt.datetime(2025, 1, 1, tzinfo=UTC), dt.datetime(2025, 2, 1, tzinfo=UTC)
    whole, a, b = idh.truth(world, jan, FEB[1]), idh.truth(world, jan, feb), idh.truth(world, *FEB)
    for stream in ("orders", "invoices", "payments", "returns"):
        assert whole["counts"][stream] == a["counts"][stream] + b["counts"][stream], stream
        for col, total in whole["sums"][stream].items():
            assert total == a["sums"][stream][col] + b["sums"][stream][col], (stream, col)
    for key, v in whole["receivables"].items():
        assert v["open"] == v["invoiced"] - v["paid"] - sum(
            i.total_retur for i in idh.iter_invoices(world, dt.date(2025, 1, 1), dt.date(2025, 2, 28))
            if f"C{i.customer:03d}" == key[0])
    assert whole["counts"]["customers"] == 40


def test_records_follow_as_of(fresh_sim):
    world = fresh_sim.state.world
    late = world.as_of
    order = next(f for f in idh.iter_orders(world, dt.date(2025, 3, 1), dt.date(2025, 3, 10))
                 if f.fate == "confirmed")
    requests.post(f"{fresh_sim.url}/_sim/config", json={"as_of": (order.created + dt.timedelta(seconds=1))
                                                        .isoformat()}, timeout=10)
    assert _ok(fresh_sim, f"/v1/order/po/{order.po}/ext")["object"]["status_confirmedorder"] == ""
    inv = idh.invoice_for_order(world, order)
    assert _get(fresh_sim, f"/v1/invoice/detail/{inv.id}").json()["success"] is False  # not created yet
    requests.post(f"{fresh_sim.url}/_sim/config", json={"as_of": late.isoformat()}, timeout=10)
    assert _ok(fresh_sim, f"/v1/order/po/{order.po}/ext")["object"]["status_confirmedorder"] == "confirm"
    assert _ok(fresh_sim, f"/v1/invoice/detail/{inv.id}")["object"]["order_ids"].count(order.po) == 1


def test_duplicates_fault_repeats_the_previous_page_last_row(fresh_sim):
    fresh_sim.state.faults["idh"].update(duplicates=True)
    p1 = _ok(fresh_sim, "/v1/store", page=1)["results"]
    p2 = _ok(fresh_sim, "/v1/store", page=2)["results"]
    assert p2[0] == p1[-1] and len(p2) == 11
    inv1 = _ok(fresh_sim, "/v1/invoice", limit=5)["results"]
    inv2 = _ok(fresh_sim, "/v1/invoice", limit=5, p=2)["results"]
    assert inv2[0] == inv1[-1]


def test_token_ttl_fault_expires_the_static_token(fresh_sim):
    fresh_sim.state.faults["idh"].update(token_ttl=0.3)
    assert _ok(fresh_sim, "/v1/ping") == {"success": True}
    time.sleep(0.4)
    r = _get(fresh_sim, "/v1/ping")
    assert (r.status_code, r.json()) == (401, {"error": "token is expired", "success": False})
