"""The Shopwave simulator honours its contract (seed 002, providers.md section 3): OAuth2 refresh-token
grant, the documented error ids and envelope, x-accept-version, id-keyed maps without pagination,
header filters, the SWQL report, and a truth() that agrees with what the API serves."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from decimal import Decimal

import pytest
import requests

from simulators import shopwave as sw
from simulators.world import World

UTC = dt.timezone.utc
MINOR = re.compile(r"^-?\d+\.0$")  # "1600.0" = 16.00 GBP


def _token(server, **overrides) -> requests.Response:
    form = {"grant_type": "refresh_token", **server.state.credentials["shopwave"], **overrides}
    return requests.post(f"{server.base_url('shopwave')}/oauth/token", data=form, timeout=10)


def _get(server, path: str, token: str | None = None, version: str | None = "2.0", **headers: str):
    hdrs = dict(headers)
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    if version is not None:
        hdrs["x-accept-version"] = version
    return requests.get(f"{server.base_url('shopwave')}{path}", headers=hdrs, timeout=30)


@pytest.fixture(scope="module")
def token(sim) -> str:
    return _token(sim).json()["access_token"]


def _assert_error(resp: requests.Response, error_id: int, detail: str | None = None) -> None:
    status, code, title, details = sw.ERRORS[error_id]
    assert resp.status_code == status
    body = resp.json()
    assert body["error"] == {"code": status, "message": title, "details": [detail or details]}
    assert body["api"]["message"] == {"error": {str(error_id): {"id": error_id, "code": code, "statusCode": status,
                                                                "title": title, "details": details}}}
    assert body["api"]["codeBaseVersion"] == "2.0"


def _swql(entity: str, start: str, end: str, op: str = ">=") -> str:
    return json.dumps({"0": {"FROM": entity, "WHERE": {"AND": [f"{entity}.completeDate {op} '{start}'",
                                                               f"{entity}.completeDate < '{end}'"]}}})


# --- OAuth2 ------------------------------------------------------------------------------------------
def test_refresh_token_grant_form_and_json(sim):
    resp = _token(sim)
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == sw.TOKEN_TTL
    assert body["refresh_token"] == sw.CREDENTIALS["refresh_token"]  # not rotated
    as_json = requests.post(f"{sim.base_url('shopwave')}/oauth/token", timeout=10,
                            json={"grant_type": "refresh_token", **sw.CREDENTIALS})
    assert as_json.status_code == 200
    assert as_json.json()["access_token"] != body["access_token"]


@pytest.mark.parametrize(("overrides", "status", "error"), [
    ({"client_secret": "not-the-secret"}, 401, "invalid_client"),
    ({"client_id": "someone-else"}, 401, "invalid_client"),
    ({"refresh_token": "revoked-refresh-token"}, 400, "invalid_grant"),
    ({"refresh_token": ""}, 400, "invalid_request"),
    ({"grant_type": "authorization_code"}, 400, "unsupported_grant_type"),
    ({"grant_type": ""}, 400, "invalid_request"),
])
def test_token_refusals_follow_rfc6749(sim, overrides, status, error):
    resp = _token(sim, **overrides)
    assert resp.status_code == status
    assert resp.json()["error"] == error
    for secret in overrides.values():
        if secret and secret != "authorization_code":
            assert secret not in resp.text


# --- auth and version errors -------------------------------------------------------------------------
@pytest.mark.parametrize("header", [None, "Bearer", "Bearer ", "Token abc", "Bearer a b"])
def test_malformed_authorization_is_911(sim, header):
    headers = {"x-accept-version": "2.0"} | ({"Authorization": header} if header is not None else {})
    resp = requests.get(f"{sim.base_url('shopwave')}/invoice", headers=headers, timeout=10)
    _assert_error(resp, 911)


def test_unknown_token_is_908(sim):
    _assert_error(_get(sim, "/store", token="not-a-token"), 908)


def test_expired_token_is_908(fresh_sim):
    fresh_sim.state.faults["shopwave"].update(token_ttl=0.3)
    issued = _token(fresh_sim).json()
    assert issued["expires_in"] == sw.TOKEN_TTL  # announced an hour, dies early: a server-side expiry
    assert _get(fresh_sim, "/store", token=issued["access_token"]).status_code == 200
    time.sleep(0.4)
    _assert_error(_get(fresh_sim, "/store", token=issued["access_token"]), 908)


def test_missing_version_header_is_913(sim, token):
    _assert_error(_get(sim, "/invoice", token=token, version=None), 913,
                  "x-accept-version header is required (send x-accept-version: 2.0)")
    _assert_error(_get(sim, "/invoice", token=token, version="3.0"), 913,
                  "x-accept-version '3.0' is not supported; use 2.0")


def test_old_version_is_served_with_warning_604(sim, token):
    body = _get(sim, "/store", token=token, version="1").json()
    assert len(body["stores"]) == World.N_CUSTOMERS
    assert body["api"]["message"]["warning"] == sw.WARNING_OLD_VERSION
    assert body["api"]["message"]["success"] == sw.SUCCESS_TOKEN_VALID


# --- collections -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "key", "stream"), [
    ("/invoice", "invoices", "invoices"), ("/order", "orders", "orders"), ("/store", "stores", "stores"),
    ("/supplier/store", "supplierStores", "supplier_stores"), ("/product", "products", "products"),
])
def test_full_sweeps_are_id_keyed_maps_equal_to_truth(sim, token, path, key, stream):
    resp = _get(sim, path, token=token)
    assert resp.status_code == 200
    assert resp.headers["x-api-version"] == "2.0"
    body = resp.json()
    assert set(body) == {key, "api"}
    assert body["api"]["message"] == {"success": sw.SUCCESS_TOKEN_VALID}
    records = body[key]
    assert isinstance(records, dict)
    assert all(k == str(v["id"]) for k, v in records.items())
    truth = sw.truth(sim.state.world)
    assert len(records) == truth["counts"][stream]
    for column, total in truth["sums"].get(stream, {}).items():
        assert all(MINOR.match(r[column]) for r in records.values())
        assert sum(Decimal(r[column]) for r in records.values()) == total


def test_money_formats(sim, token):
    invoices = _get(sim, "/invoice", token=token).json()["invoices"]
    inv = next(iter(invoices.values()))
    assert inv["id"] == int(next(iter(invoices)))
    assert Decimal(inv["totalIncVat"]) == Decimal(inv["totalPrice"]) + Decimal(inv["totalVat"])
    items = inv["invoiceItems"]
    assert all("id" not in item for item in items.values())  # the map key is the item id [SEED]
    assert all(MINOR.match(item["price"]) and isinstance(item["vatPercentage"], float) for item in items.values())
    assert Decimal(inv["totalPrice"]) == sum(Decimal(i["price"]) * i["quantity"] for i in items.values())
    products = _get(sim, "/product", token=token).json()["products"]
    for p in products.values():
        for inst in p["instances"].values():
            assert MINOR.match(inst["price"]) and inst["taxPercentage"] in sw.TAX_FRACTIONS
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", inst["activeDate"])
    basket = next(sw.iter_baskets(sim.state.world))
    transactions = _get(sim, "/transaction", token=token, basketIds=str(basket.id)).json()["transactions"]
    assert len(transactions) == len(basket.payments) + (basket.refund_at is not None)
    assert all(isinstance(t["amount"], int) and isinstance(t["tip"], int) for t in transactions.values())


def test_filter_headers(sim, token):
    world = sim.state.world
    all_invoices = list(sw.iter_invoices(world))
    a, b = all_invoices[0].id, all_invoices[-1].id
    got = _get(sim, "/invoice", token=token, invoiceId=f"{a},{b}").json()["invoices"]
    assert set(got) == {str(a), str(b)}
    stores = {sw.store_id(1), sw.store_id(2)}
    got = _get(sim, "/invoice", token=token, storeIds=",".join(map(str, stores))).json()["invoices"]
    assert set(got) == {str(f.id) for f in all_invoices if sw.store_id(f.customer) in stores}
    orders = [sw.render_order(f, world.as_of) for f in sw.iter_orders(world)]
    open_ = _get(sim, "/order", token=token, completed="false").json()["orders"]
    assert set(open_) == {str(o["id"]) for o in orders if not o["completed"]}
    assert len(_get(sim, "/order", token=token, orderIds=str(orders[0]["id"])).json()["orders"]) == 1
    assert set(_get(sim, "/supplier/store", token=token, supplierIds="301,306").json()["supplierStores"]) == \
        {str(sw.supplier_store_id(301)), str(sw.supplier_store_id(306))}
    p1, p2 = (sw.product(world.seed, k).id for k in (0, 7))
    assert set(_get(sim, "/product", token=token, productIds=f"{p1},{p2}").json()["products"]) == {str(p1), str(p2)}
    basket = next(f for f in sw.iter_baskets(world) if f.refund_at and f.refund_at <= world.as_of)
    txs = _get(sim, "/transaction", token=token, basketIds=str(basket.id)).json()["transactions"]
    assert sorted(t["amount"] for t in txs.values()) == sorted(
        [-basket.total] + [amount for _kind, amount, _tip in basket.payments])
    assert set(_get(sim, "/basket", token=token, basketIds=str(basket.id)).json()["baskets"]) == {str(basket.id)}


def test_bad_filters(sim, token):
    _assert_error(_get(sim, "/invoice", token=token, storeIds="1001,abc"), 913,
                  "storeIds must be a comma separated list of ids, got '1001,abc'")
    _assert_error(_get(sim, "/invoice", token=token, storeIds="1001,77"), 912,
                  "store 77 does not belong to this merchant")


# --- SWQL report -------------------------------------------------------------------------------------
def test_report_windows_equal_truth(sim, token):
    day0, day1 = dt.datetime(2025, 3, 3, tzinfo=UTC), dt.datetime(2025, 3, 4, tzinfo=UTC)
    truth = sw.truth(sim.state.world, day0, day1)
    baskets = _get(sim, "/report", token=token,
                   query=_swql("Basket", "2025-03-03 00:00:00", "2025-03-04 00:00:00")).json()
    part = baskets["report"]["0"]
    assert part["keys"] == [f"Basket.{f}" for f in sw.REPORT_FIELDS["Basket"]]
    assert all(isinstance(row, list) for row in part["data"])
    assert len(part["data"]) == truth["counts"]["baskets"]
    price = part["keys"].index("Basket.totalPrice")
    assert sum(Decimal(row[price]) for row in part["data"]) == truth["sums"]["baskets"]["totalPrice"]
    txs = _get(sim, "/report", token=token,
               query=_swql("Transaction", "2025-03-03 00:00:00", "2025-03-04 00:00:00")).json()["report"]["0"]
    amount = txs["keys"].index("Transaction.amount")
    assert len(txs["data"]) == truth["counts"]["transactions"]
    assert sum(row[amount] for row in txs["data"]) == truth["sums"]["transactions"]["amount"]
    assert any(row[amount] < 0 for row in txs["data"]) == any(
        t["amount"] < 0 for t in sw.iter_transactions(sim.state.world, day0, day1))


def test_report_select_with_alias(sim, token):
    q = json.loads(_swql("Basket", "2025-03-03 00:00:00", "2025-03-03 12:00:00"))
    q["0"]["SELECT"] = "Basket.id AS id, Basket.completeDate AS date"
    part = _get(sim, "/report", token=token, query=json.dumps(q)).json()["report"]["0"]
    assert part["keys"] == ["id", "date"]
    expected = sorted(f.id for f in sw.iter_completed_baskets(
        sim.state.world, dt.datetime(2025, 3, 3, tzinfo=UTC), dt.datetime(2025, 3, 3, 12, tzinfo=UTC)))
    assert [row[0] for row in part["data"]] == expected


@pytest.mark.parametrize(("query", "detail"), [
    (None, "the query header (SWQL) is required"),
    ("{not json", "the query header is not valid JSON"),
    (json.dumps({"0": {"FROM": "Invoice", "WHERE": {"AND": []}}}),
     "FROM must be one of Basket, Transaction, got 'Invoice'"),
    (json.dumps({"0": {"FROM": "Basket", "WHERE": {"AND": []}, "GROUP": "Basket.id"}}),
     "GROUP is not supported by this simulator"),
    (json.dumps({"0": {"FROM": "Basket", "WHERE": {"AND": ["Basket.completeDate > '2025-03-03'"]}}}),
     "Basket.completeDate: '2025-03-03' is not 'YYYY-MM-DD HH:MM:SS'"),
    (json.dumps({"0": {"FROM": "Basket", "WHERE": {"AND": ["Basket.name = 'x'"]}}}),
     "Basket.name cannot be filtered on"),
])
def test_report_rejects_what_it_cannot_read(sim, token, query, detail):
    headers = {"query": query} if query is not None else {}
    _assert_error(_get(sim, "/report", token=token, **headers), 913, detail)


def test_report_duplicates_and_drift(fresh_sim):
    tok = _token(fresh_sim).json()["access_token"]
    q = _swql("Transaction", "2025-03-03 00:00:00", "2025-03-05 00:00:00")
    clean = _get(fresh_sim, "/report", token=tok, query=q).json()["report"]["0"]["data"]
    ids = [row[0] for row in clean]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    fresh_sim.state.faults["shopwave"].update(duplicates=True, drift=True)
    faulty = [row[0] for row in _get(fresh_sim, "/report", token=tok, query=q).json()["report"]["0"]["data"]]
    assert set(faulty) == set(ids)
    assert len(faulty) == len(ids) + len(range(0, len(ids), 10))  # every tenth row twice
    assert faulty[0] == max(ids)  # newest first


def test_injected_api_error_gives_a_partial_200(fresh_sim):
    tok = _token(fresh_sim).json()["access_token"]
    sw.inject_api_errors(fresh_sim.state, 919)
    partial = _get(fresh_sim, "/store", token=tok)
    assert partial.status_code == 200
    body = partial.json()
    assert len(body["stores"]) == World.N_CUSTOMERS // 2
    assert body["api"]["message"]["error"]["919"]["title"] == "Cannot handle too many request"
    assert len(_get(fresh_sim, "/store", token=tok).json()["stores"]) == World.N_CUSTOMERS


# --- truth -------------------------------------------------------------------------------------------
def test_truth_windows_add_up_and_snapshots_do_not_depend_on_the_window(sim):
    world = sim.state.world
    d1, d2, d3 = (dt.datetime(2025, 2, d, tzinfo=UTC) for d in (1, 10, 20))
    whole, first, second = sw.truth(world, d1, d3), sw.truth(world, d1, d2), sw.truth(world, d2, d3)
    for stream in ("baskets", "transactions"):
        assert whole["counts"][stream] == first["counts"][stream] + second["counts"][stream] > 0
        for col, total in whole["sums"][stream].items():
            assert total == first["sums"][stream][col] + second["sums"][stream][col]
    for stream in ("invoices", "orders", "stores", "supplier_stores", "products"):
        assert whole["counts"][stream] == first["counts"][stream] == sw.truth(world)["counts"][stream]


def test_truth_moves_with_as_of(sim):
    from simulators.world import WorldConfig
    earlier = World(WorldConfig(seed=7, as_of=dt.datetime(2025, 2, 1, tzinfo=UTC)))
    now = sw.truth(sim.state.world)
    then = sw.truth(earlier)
    assert then["counts"]["invoices"] < now["counts"]["invoices"]
    assert then["counts"]["products"] < now["counts"]["products"]
    assert then["counts"]["orders"] < now["counts"]["orders"]


def test_receivables_are_the_invoices_per_store(sim, token):
    invoices = _get(sim, "/invoice", token=token).json()["invoices"].values()
    by_store: dict[str, Decimal] = {}
    for inv in invoices:
        by_store[str(inv["storeId"])] = by_store.get(str(inv["storeId"]), Decimal(0)) + \
            Decimal(inv["totalIncVat"]) / 100
    expected = {(f"C{n:03d}", "GBP"): {"invoiced": by_store[sw.customer_id(n)], "paid": Decimal("0.00"),
                                       "open": by_store[sw.customer_id(n)]}
                for n in range(1, World.N_CUSTOMERS + 1) if sw.customer_id(n) in by_store}
    assert sw.truth(sim.state.world)["receivables"] == expected
