"""Contract of the Akinon OMS simulator (seed 004, providers.md section 5): what hooks, staging and demos
may rely on.

Auth bodies, the DRF envelope and its links, 1-based pages and the 404 past the last one, the filters,
record shapes against the seed's own example (keys and value types, money as strings), the documented
order / order item / product / stock location fields, and the coherence of orders with invoices. Every
expected number comes from ``truth()``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from simulators import akinon
from simulators.world import EPOCH

INVOICES = "/api/v1/oms/invoices/"
ORDERS = "/api/v1/oms/orders/"
STOCK_LOCATIONS = "/api/v1/oms/stocklocations/list-simple/"
MONEY_RE = re.compile(r"^-?\d+\.\d{2}$")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")  # "2019-03-20T13:20:08.657659Z"
TS_NO_FRACTION_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")  # date_placed "2018-11-07T14:45:29Z"

#: The invoice of seed 004's example response, verbatim (the seed is the contract of record shapes).
SEED_INVOICE = json.loads("""
{"id": 2, "invoice_type": "purchased", "status": "waiting",
 "channel": {"id": 2, "channel_type": "channel", "created_date": "2019-03-20T13:20:08.657659Z",
             "modified_date": "2019-03-20T13:20:08.657691Z", "omnitron_id": 3, "name": "name",
             "configuration": {}, "is_active": false},
 "address": {"pk": 3, "email": "email", "phone_number": "05000000000", "first_name": "first_name",
             "last_name": "last_name", "country": 1, "city": 2, "line": "line", "title": "title",
             "township": 2, "district": null, "postcode": "", "notes": null, "company_name": null,
             "tax_office": null, "tax_no": null, "e_bill_taxpayer": false, "is_corporate": false},
 "invoiceitem_set": [{"id": 2, "created_date": "2019-03-20T13:20:08.747792Z",
                      "modified_date": "2019-03-20T13:20:08.747821Z", "tax_rate": "8.00",
                      "tax_amount": "29.56", "discount_rate": "0.00", "discount_amount": "0.00",
                      "interest_rate": "0.00", "interest_amount": null, "total_amount": "399.00",
                      "net_amount": "399.00", "order_item": 2}],
 "order": {"id": 2,
           "state": {"id": 25, "next_states": [], "previous_states": [],
                     "created_date": "2019-03-20T13:20:08.201990Z",
                     "modified_date": "2019-03-20T13:20:08.202020Z", "name": "Waiting", "config": {},
                     "enum_class": "OrderStatus", "enum_value": "100", "content_type": 17},
           "payment_type": null, "created_date": "2019-03-20T13:20:08.684840Z",
           "modified_date": "2019-03-20T13:20:08.684867Z", "omnitron_id": 32797,
           "number": "378321346010117487", "date_placed": "2018-11-07T14:45:29Z", "channel": 2,
           "customer": 2, "shipping_address": 4, "billing_address": 3},
 "package_number": "PCK_200_1", "created_date": "2019-03-20T13:20:08.741964Z",
 "modified_date": "2019-03-20T13:20:08.741992Z", "number": "9222609107"}
""")
#: Seed nulls that the real API fills in some records (the seed shows one record only).
NULLABLE_STRINGS = {"payment_type"}

NONE = type(None)
#: Documented order fields (providers.md 5.3, DOC order-services): name -> accepted types.
ORDER_FIELDS = {"id": int, "state": dict, "commands": list, "orderitem_set": list,
                "payment_type": (str, NONE), "created_date": str, "modified_date": str, "omnitron_id": int,
                "number": str, "date_placed": str, "channel": int, "customer": int,
                "shipping_address": int, "billing_address": int}
ORDER_ITEM_FIELDS = {"id": int, "state": dict, "product": dict, "omnitron_id": int, "net_amount": str,
                     "price": str, "price_currency": str, "retail_price": str, "tax_rate": str,
                     "tax_amount": (str, NONE), "discount_amount": str, "without_net_amount": str,
                     "installment_interest_amount": str, "attributes": dict, "image": (str, NONE)}
ORDER_ITEM_MONEY = ("net_amount", "price", "retail_price", "tax_rate", "tax_amount", "discount_amount",
                    "without_net_amount", "installment_interest_amount")
PRODUCT_FIELDS = {"id": int, "productimage_set": list, "omnitron_id": int, "name": str, "base_code": str,
                  "sku": str, "barcode": str, "attributes": dict, "attributes_kwargs": dict,
                  "extra_attributes": dict, "remote_modified_date": str}
STOCK_LOCATION_FIELDS = {"id": int, "created_date": str, "modified_date": str, "omnitron_id": int,
                         "name": str, "stock_location_type": str, "fax_number": (str, NONE), "erp_code": str,
                         "address": int, "is_fulfillment_center": bool, "is_pickup_location": bool,
                         "is_delivery_location": bool, "is_fast_delivery_available": bool,
                         "is_return_available": bool, "is_active": bool, "priority": int}


def _get(sim, path: str, token: str | None = "default", scheme: str = "Token", **params):
    headers = {"Accept": "application/json"}
    if token == "default":
        token = sim.state.credentials["akinon"]["token"]
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}"
    return requests.get(sim.base_url("akinon") + path, headers=headers, params=params, timeout=30)


def _all_pages(sim, path: str, **params) -> tuple[list[dict], list[dict]]:
    """Follow ``next`` verbatim from page 1; returns (records, envelopes without results)."""
    token = sim.state.credentials["akinon"]["token"]
    url, records, envelopes = sim.base_url("akinon") + path, [], []
    first = True
    while url:
        resp = requests.get(url, headers={"Authorization": f"Token {token}"},
                            params=params if first else None, timeout=30)
        first = False
        assert resp.status_code == 200, resp.text
        body = resp.json()
        records += body["results"]
        envelopes.append({k: v for k, v in body.items() if k != "results"})
        url = body["next"]
    return records, envelopes


def _assert_types(record: dict, fields: dict, where: str) -> None:
    missing = set(fields) - set(record)
    assert not missing, f"{where}: documented fields missing: {sorted(missing)}"
    for name, types in fields.items():
        assert isinstance(record[name], types), f"{where}.{name}: {record[name]!r} is not {types}"
        if types is int:
            assert not isinstance(record[name], bool), f"{where}.{name} is a bool, not an int"


def _assert_like_seed(value, seed, where: str) -> None:
    """Same keys and value types as the seed example, recursively (seed null: null or a string)."""
    if isinstance(seed, dict):
        assert isinstance(value, dict), where
        assert set(value) == set(seed), f"{where}: keys differ: {sorted(set(value) ^ set(seed))}"
        for k in seed:
            _assert_like_seed(value[k], seed[k], f"{where}.{k}")
    elif isinstance(seed, list):
        assert isinstance(value, list), f"{where}: expected a list"
        assert bool(value) == bool(seed), f"{where}: the seed's list is {'non-' if seed else ''}empty"
        for i, v in enumerate(value):
            _assert_like_seed(v, seed[0], f"{where}[{i}]")
    elif seed is None:
        leaf = where.rsplit(".", 1)[-1]
        assert value is None or (leaf in NULLABLE_STRINGS and isinstance(value, str)), f"{where}: {value!r}"
    else:
        assert type(value) is type(seed), f"{where}: {value!r} is {type(value).__name__}, seed has {seed!r}"
        if isinstance(seed, str) and TS_RE.match(seed):
            assert TS_RE.match(value), f"{where}: {value!r} is not ISO UTC with microseconds and Z"
        if isinstance(seed, str) and MONEY_RE.match(seed):
            assert MONEY_RE.match(value), f"{where}: {value!r} is not a money string"


@pytest.fixture(scope="module")
def truth(sim):
    return akinon.truth(sim.state.world)


@pytest.fixture(scope="module")
def all_orders(sim):
    records, _ = _all_pages(sim, ORDERS, limit=250)
    return records


@pytest.fixture(scope="module")
def all_invoices(sim):
    records, _ = _all_pages(sim, INVOICES, limit=250)
    return records


# --- auth ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [INVOICES, ORDERS, STOCK_LOCATIONS, f"{INVOICES}1/", f"{ORDERS}1/"])
def test_missing_and_wrong_token_are_401_with_drf_detail(sim, path):
    missing = _get(sim, path, token=None)
    assert missing.status_code == 401
    assert missing.json() == {"detail": "Authentication credentials were not provided."}
    wrong = _get(sim, path, token="not-the-token")
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "Invalid token."}
    wrong_scheme = _get(sim, path, scheme="Basic")
    assert wrong_scheme.status_code == 401
    assert wrong_scheme.json() == {"detail": "Invalid token."}


@pytest.mark.parametrize("path", [INVOICES, ORDERS, STOCK_LOCATIONS])
def test_bearer_scheme_is_accepted_as_in_the_newer_openapi_pages(sim, path):
    assert _get(sim, path, scheme="Bearer").status_code == 200


# --- DRF envelope and pagination ----------------------------------------------------------------------
@pytest.mark.parametrize("path,stream", [(INVOICES, "invoices"), (ORDERS, "orders")])
def test_drf_envelope_links_and_one_based_pages(sim, truth, path, stream):
    count, limit = truth["counts"][stream], 200
    pages = -(-count // limit)
    assert pages >= 3  # the links of a first, a middle and a last page are all exercised
    records, envelopes = _all_pages(sim, path, limit=limit)
    assert len(envelopes) == pages
    assert [e["count"] for e in envelopes] == [count] * pages
    assert len(records) == count and len({r["id"] for r in records}) == count
    base = sim.base_url("akinon") + path
    for n, env in enumerate(envelopes, start=1):
        assert set(env) == {"count", "next", "previous"}
        if n < pages:
            nxt = urlsplit(env["next"])
            assert f"{nxt.scheme}://{nxt.netloc}{nxt.path}" == base
            assert parse_qs(nxt.query) == {"limit": [str(limit)], "page": [str(n + 1)]}
        else:
            assert env["next"] is None
        if n == 1:
            assert env["previous"] is None
        else:
            prev = urlsplit(env["previous"])
            # DRF drops page=1 from the previous link of page 2
            want = {"limit": [str(limit)]} | ({"page": [str(n - 1)]} if n > 2 else {})
            assert parse_qs(prev.query) == want


@pytest.mark.parametrize("path,stream", [(INVOICES, "invoices"), (ORDERS, "orders")])
def test_default_page_size_is_20_and_pages_past_the_end_are_404(sim, truth, path, stream):
    count = truth["counts"][stream]
    body = _get(sim, path).json()
    assert body["count"] == count and len(body["results"]) == 20
    last = -(-count // 20)
    tail = _get(sim, path, page=last).json()
    assert len(tail["results"]) == count - 20 * (last - 1) and tail["next"] is None
    for bad in (last + 1, 0, "x"):
        resp = _get(sim, path, page=bad)
        assert resp.status_code == 404
        assert resp.json() == {"detail": "Invalid page."}


@pytest.mark.parametrize("path,stream", [(INVOICES, "invoices"), (ORDERS, "orders")])
def test_modified_date_filter_matches_truth_of_the_window(sim, path, stream):
    start = dt.datetime(2025, 2, 10, tzinfo=dt.timezone.utc)
    end = start + dt.timedelta(days=3)
    want = akinon.truth(sim.state.world, start, end)
    records, _ = _all_pages(sim, path, limit=50, modified_date__gte=start.isoformat().replace("+00:00", "Z"),
                            modified_date__lt=end.isoformat().replace("+00:00", "Z"))
    assert len(records) == want["counts"][stream]
    for r in records:
        assert start <= dt.datetime.fromisoformat(r["modified_date"].replace("Z", "+00:00")) < end
    items = [i for r in records for i in r.get("invoiceitem_set") or r.get("orderitem_set")]
    assert sum(Decimal(i["net_amount"]) for i in items) == want["sums"][stream]["total_amount"]


def test_a_bad_filter_date_is_a_400_field_error(sim):
    resp = _get(sim, ORDERS, modified_date__gte="yesterday")
    assert resp.status_code == 400
    assert resp.json() == {"modified_date__gte": ["Enter a valid date/time."]}


# --- shapes -------------------------------------------------------------------------------------------
def test_invoices_have_the_seed_examples_keys_and_value_types(sim, all_invoices, truth):
    assert len(all_invoices) == truth["counts"]["invoices"]
    for inv in all_invoices:
        _assert_like_seed(inv, SEED_INVOICE, f"invoice {inv['id']}")
        assert TS_NO_FRACTION_RE.match(inv["order"]["date_placed"])


def test_orders_have_the_documented_fields_and_the_seed_order_header(all_orders, truth):
    assert len(all_orders) == truth["counts"]["orders"]
    header = {k: v for k, v in SEED_INVOICE["order"].items() if k != "state"}
    for o in all_orders:
        where = f"order {o['id']}"
        _assert_types(o, ORDER_FIELDS, where)
        _assert_like_seed({k: o[k] for k in header}, header, where)
        _assert_like_seed({k: v for k, v in o["state"].items() if k != "translations"},
                          SEED_INVOICE["order"]["state"], f"{where}.state")
        assert set(o["state"]["translations"]) == {"en-us", "tr-tr"}
        assert TS_NO_FRACTION_RE.match(o["date_placed"])
        assert o["orderitem_set"], f"{where} has no items"
        for item in o["orderitem_set"]:
            _assert_types(item, ORDER_ITEM_FIELDS, f"{where} item {item['id']}")
            _assert_types(item["product"], PRODUCT_FIELDS, f"{where} item {item['id']}.product")
            assert item["price_currency"] == "try"
            for m in ORDER_ITEM_MONEY:
                assert item[m] is None or MONEY_RE.match(item[m]), f"{where} item {item['id']}.{m}={item[m]!r}"
            assert TS_RE.match(item["product"]["remote_modified_date"])
            assert len(item["product"]["barcode"]) == 13 and item["product"]["barcode"].isdigit()


def test_stock_locations_are_a_bare_array_with_the_documented_fields(sim, truth):
    resp = _get(sim, STOCK_LOCATIONS)
    assert resp.status_code == 200
    body = resp.json()
    assert isinstance(body, list)
    assert sorted(str(r["id"]) for r in body) == truth["stock_location_ids"]
    assert len(body) == truth["counts"]["stock_locations"]
    for r in body:
        _assert_types(r, STOCK_LOCATION_FIELDS, f"stock location {r['id']}")
        assert TS_RE.match(r["created_date"]) and TS_RE.match(r["modified_date"])


def test_stock_locations_follow_the_time_axis(sim):
    as_of = sim.state.world.as_of
    opened = {sid: o for sid, _, _, _, o, _ in akinon.STOCK_LOCATIONS}
    closed = {sid: c for sid, _, _, _, _, c in akinon.STOCK_LOCATIONS if c is not None}
    body = {r["id"]: r for r in _get(sim, STOCK_LOCATIONS).json()}
    assert set(body) == {sid for sid, o in opened.items() if o <= as_of}
    assert {sid for sid, r in body.items() if not r["is_active"]} == {
        sid for sid, c in closed.items() if c <= as_of}
    before = akinon.stock_locations(min(opened.values()) + dt.timedelta(days=1))
    assert [r["id"] for r in before] == [min(opened, key=opened.get)]


# --- coherence and details ----------------------------------------------------------------------------
def test_orders_are_coherent_with_invoices(all_orders, all_invoices):
    invoices = {inv["order"]["id"]: inv for inv in all_invoices}
    assert set(invoices) == {o["id"] for o in all_orders}
    for o in all_orders:
        inv = invoices[o["id"]]
        assert {k: o[k] for k in inv["order"] if k != "state"} == {
            k: v for k, v in inv["order"].items() if k != "state"}
        assert o["state"]["enum_value"] == inv["order"]["state"]["enum_value"]
        lines = {ln["order_item"]: ln for ln in inv["invoiceitem_set"]}
        assert [i["id"] for i in o["orderitem_set"]] == list(lines)
        for item in o["orderitem_set"]:
            ln = lines[item["id"]]
            for m in ("net_amount", "tax_rate", "tax_amount", "discount_amount"):
                assert item[m] == ln[m]
            price, qty = Decimal(item["price"]), item["quantity"]
            assert price * qty == Decimal(ln["total_amount"])
            assert price * qty - Decimal(item["discount_amount"]) == Decimal(item["net_amount"])
            assert Decimal(item["retail_price"]) >= price


def test_order_and_invoice_details_equal_the_list_records(sim, all_orders, all_invoices):
    for records, path in ((all_orders, ORDERS), (all_invoices, INVOICES)):
        for rec in (records[0], records[len(records) // 2], records[-1]):
            resp = _get(sim, f"{path}{rec['id']}/")
            assert resp.status_code == 200
            assert resp.json() == rec


@pytest.mark.parametrize("path", [ORDERS, INVOICES])
def test_unknown_and_future_ids_are_404(sim, path):
    tomorrow = sim.state.world.as_of.date() + dt.timedelta(days=1)
    future = akinon.invoice_id((tomorrow - EPOCH).days, 0)
    for id_ in (future, 9_999, 0):
        resp = _get(sim, f"{path}{id_}/")
        assert resp.status_code == 404
        assert resp.json() == {"detail": "Not found."}


def test_truth_keeps_the_flat_keys_and_adds_the_standard_shape(truth):
    assert truth["provider"] == "akinon"
    assert truth["invoices"] == truth["counts"]["invoices"] == truth["counts"]["orders"]
    assert truth["total_amount"] == truth["sums"]["invoices"]["total_amount"] == \
        truth["sums"]["orders"]["total_amount"]
    assert sum(s["invoices"] for s in truth["by_status"].values()) == truth["invoices"]
    rec = truth["receivables"]
    assert rec is truth["by_customer"]
    cancelled = truth["by_status"].get("cancelled", {}).get("total_amount", Decimal(0))
    assert sum(v["invoiced"] for v in rec.values()) == truth["total_amount"] - cancelled
    for key, v in rec.items():
        assert key[1] == "TRY" and re.fullmatch(r"C\d{3}", key[0])
        assert v["open"] == v["invoiced"] - v["paid"]
    assert akinon.customer_id(7) == "7"
