"""The REDEX simulator honours the documented contract (seed 003, providers.md section 4).

Raw HTTP against the simulator, no engine: the api-key token grant and its refresh, the envelope on
success and on 400/401/403, page-number paging with ``Meta``, the filters, both documented row shapes,
the detail with items, the spot-exchange transactions, the time axis and the faults the app itself
honours (token_ttl, duplicates, drift). Expected values come from the simulator's own facts and truth().
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
from decimal import Decimal

import pytest
import requests

from simulators import redex as R
from tests.conftest import AS_OF

SEED_ERRORS = {
    400: {"Data": None, "Errors": None, "Meta": None, "StatusCode": 400, "Message": "Bad request"},
    401: {"Data": None, "Errors": None, "Meta": None, "StatusCode": 401, "Message": "Unauthorized"},
    403: {"Data": None, "Errors": None, "Meta": None, "StatusCode": 403, "Message": "Forbidden"},
}


def _url(sim, path: str) -> str:
    return sim.base_url("redex") + path


def _body(resp: requests.Response):
    return json.loads(resp.content, parse_float=Decimal)


def _grant(sim, **override) -> requests.Response:
    c = sim.state.credentials["redex"]
    body = {"ApiKey": c["api_key"], "GrantType": "api_key", "ClientId": c["client_id"],
            "ClientSecret": c["client_secret"], **override}
    return requests.post(_url(sim, "/public/v2/connect/token"), json=body, timeout=10)


def _token(sim) -> str:
    return _grant(sim).json()["Data"]["AccessToken"]


def _get(sim, path: str, token: str | None, params=None, bare: bool = False) -> requests.Response:
    headers = {} if token is None else {"Authorization": token if bare else f"Bearer {token}"}
    return requests.get(_url(sim, path), params=params, headers=headers, timeout=10)


def _sweep(sim, token: str, path: str = "/public/v2/invoices", **params) -> list[dict]:
    rows, page = [], 1
    while True:
        body = _body(_get(sim, path, token, {**params, "CurrentPage": page, "ItemsPerPage": 100}))
        assert body["StatusCode"] == 200 and body["Meta"]["CurrentPage"] == page
        rows += body["Data"]
        if page >= body["Meta"]["TotalPage"]:
            assert body["Meta"]["TotalItems"] == len(rows)
            return rows
        page += 1


@pytest.fixture(scope="module")
def token(sim) -> str:
    return _token(sim)


@pytest.fixture(scope="module")
def truth(sim) -> dict:
    return sim.state.truth("redex")


@pytest.fixture(scope="module")
def invoices(sim, token) -> list[dict]:
    return _sweep(sim, token)


# --- auth ---------------------------------------------------------------------------------------------
def test_token_grant_returns_the_documented_envelope(sim):
    resp = _grant(sim)
    body = resp.json()
    assert resp.status_code == 200
    assert set(body) == {"Data", "Meta", "Errors", "StatusCode", "Message"}
    assert (body["StatusCode"], body["Message"], body["Errors"]) == (200, "Success", None)
    data = body["Data"]
    assert set(data) == {"AccessToken", "RefreshToken", "ExpiresIn", "TokenType", "Scope"}
    assert data["ExpiresIn"] == "3600"  # a string, as on the token page
    assert (data["TokenType"], data["Scope"]) == ("Bearer", "REConnect_api REDEX_api REHash_api")
    assert data["AccessToken"] != data["RefreshToken"]
    assert sim.state.tokens["redex"].check(data["AccessToken"]) == "ok"


def test_token_grant_refusals(sim):
    wrong = _grant(sim, ClientSecret="not-the-secret")
    assert (wrong.status_code, wrong.json()) == (401, SEED_ERRORS[401])
    wrong_key = _grant(sim, ApiKey="00000000-0000-0000-0000-000000000000")
    assert (wrong_key.status_code, wrong_key.json()) == (401, SEED_ERRORS[401])
    grant_type = _grant(sim, GrantType="client_credentials")
    assert grant_type.status_code == 400
    assert grant_type.json()["Message"] == "Bad request"
    assert grant_type.json()["Errors"] == [{"Field": "GrantType", "Message": "GrantType must be 'api_key'."}]
    too_long = _grant(sim, ClientId="x" * 37)
    assert too_long.json()["Errors"] == [
        {"Field": "ClientId", "Message": "The field ClientId must be a string with a maximum length of 36."}]
    empty = requests.post(_url(sim, "/public/v2/connect/token"), data=b"not json", timeout=10)
    assert (empty.status_code, empty.json()["Message"]) == (400, "Bad request")


def test_refresh_token_grant(sim):
    c = sim.state.credentials["redex"]
    first = _grant(sim).json()["Data"]
    body = {"RefreshToken": first["RefreshToken"], "GrantType": "refresh_token", "ClientId": c["client_id"],
            "ClientSecret": c["client_secret"]}
    resp = requests.post(_url(sim, "/public/v2/connect/token/refresh"), json=body, timeout=10)
    data = resp.json()["Data"]
    assert resp.status_code == 200 and data["ExpiresIn"] == "3600"
    assert data["AccessToken"] not in (first["AccessToken"], first["RefreshToken"])
    assert _get(sim, "/public/v2/invoices", data["AccessToken"]).status_code == 200
    # An access token is not a refresh token, and the client must be the same.
    for bad in ({**body, "RefreshToken": first["AccessToken"]}, {**body, "ClientSecret": "other"}):
        r = requests.post(_url(sim, "/public/v2/connect/token/refresh"), json=bad, timeout=10)
        assert (r.status_code, r.json()) == (401, SEED_ERRORS[401])


def test_data_endpoints_need_a_token(sim, token):
    missing = _get(sim, "/public/v2/invoices", None)
    assert (missing.status_code, missing.json()) == (401, SEED_ERRORS[401])
    refresh_as_access = _get(sim, "/public/v2/invoices", _grant(sim).json()["Data"]["RefreshToken"])
    assert refresh_as_access.status_code == 401
    # The 2024-10 page sends "Bearer <token>"; the seed shows the bare "{{token}}": both are accepted.
    assert _get(sim, "/public/v2/invoices", token).status_code == 200
    assert _get(sim, "/public/v2/invoices", token, bare=True).status_code == 200


# --- invoices -----------------------------------------------------------------------------------------
def test_sweep_of_each_transaction_type_equals_truth(sim, token, truth):
    by_type = {t: _sweep(sim, token, TransactionType=t) for t in R.DIRECTIONS}
    for t, rows in by_type.items():
        expected = truth["by_direction"][t]
        assert len(rows) == expected["invoices"]
        assert sum(r["Total"] for r in rows) == expected["Total"]
        assert {r["InvoiceNumber"].split("-")[1] for r in rows} == {R.DIRECTIONS[t]}
    numbers = [r["InvoiceNumber"] for rows in by_type.values() for r in rows]
    assert len(numbers) == len(set(numbers)) == truth["counts"]["invoices"]
    meta = _body(_get(sim, "/public/v2/invoices", token, {"ItemsPerPage": 7}))["Meta"]
    assert meta == {"CurrentPage": 1, "TotalPage": math.ceil(truth["counts"]["invoices"] / 7), "ItemsPerPage": 7,
                    "TotalItems": truth["counts"]["invoices"]}
    # Default page size is the seed's 10; the undocumented maximum is clamped to 100.
    assert _body(_get(sim, "/public/v2/invoices", token))["Meta"]["ItemsPerPage"] == 10
    assert _body(_get(sim, "/public/v2/invoices", token, {"ItemsPerPage": 5000}))["Meta"]["ItemsPerPage"] == 100
    past = _body(_get(sim, "/public/v2/invoices", token, {"CurrentPage": 999, "ItemsPerPage": 100}))
    assert past["Data"] == [] and past["Meta"]["CurrentPage"] == 999


def test_both_row_shapes_timestamps_and_json_numbers(sim, token, truth, invoices):
    legacy = [r for r in invoices if isinstance(r["Status"], str)]
    current = [r for r in invoices if isinstance(r["Status"], dict)]
    assert (len(legacy), len(current)) == (truth["status_forms"]["string"], truth["status_forms"]["object"])
    ts7 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}"
    for r in legacy:
        assert r["StatusDescription"] == R.STATUS_DESCRIPTIONS[r["Status"]]
        assert re.fullmatch(ts7, r["IssuedDate"]) and r["DueDate"].endswith("T23:59:59.9999999")
        assert re.fullmatch(r"[\d\-T:]{19}\.\d{2}", r["CreatedTime"])
        assert {"TotalReceivable", "TotalFee", "SubTotal", "CurrencySymbolic"} <= set(r)
    for r in current:
        assert r["Status"] == {"Value": r["Status"]["Value"],
                               "Description": R.STATUS_DESCRIPTIONS[r["Status"]["Value"]]}
        assert r["IssuedDate"].endswith("T00:00:00.0000000Z") and r["DueDate"].endswith("T23:59:59.9999999Z")
        assert re.fullmatch(r"[\d\-T:]{19}\.\d{3}", r["CreatedTime"])
        assert "WhiteLabelName" in r and "StatusDescription" not in r
    paid = [r for r in invoices if r["PaidDate"]]
    assert paid and all(re.fullmatch(ts7 + "Z?", r["PaidDate"]) for r in paid)
    # Amounts are JSON numbers with exact decimals, never strings (decimal(18,6)).
    text = _get(sim, "/public/v2/invoices", token, {"ItemsPerPage": 100}).text
    assert re.search(r'"Total":\d+\.\d\d[,}]', text) and '"Total":"' not in text
    assert re.search(r'"Quantity":\d+\.000000[,}]', text)  # the 2024-10 shape's 6 fixed decimals


def test_legacy_money_follows_the_seed_arithmetic(invoices):
    # Seed: SubTotal 1176.3, TotalFee 27.8865, TaxPercent 0.08 -> TaxAmount 91.87, TotalReceivable
    # 1240.2835, Total 1240.29 (tax and total rounded separately).
    seed = {"SubTotal": Decimal("1176.3"), "TotalFee": Decimal("27.8865"), "TaxPercent": Decimal("0.08")}
    legacy = [r for r in invoices if isinstance(r["Status"], str)]
    for r in [seed, *legacy]:
        net = r["SubTotal"] - r["TotalFee"]
        tax = R.round2(net * r["TaxPercent"])
        expected = (tax, net + tax, R.round2(net + net * r["TaxPercent"]))
        if r is seed:
            assert expected == (Decimal("91.87"), Decimal("1240.2835"), Decimal("1240.29"))
        else:
            assert (r["TaxAmount"], r["TotalReceivable"], r["Total"]) == expected


def test_filters_and_order(sim, token, truth):
    statuses = _sweep(sim, token, Statuses=["Paid", "Cancelled"])
    assert len(statuses) == truth["by_status"]["Paid"]["invoices"] + truth["by_status"]["Cancelled"]["invoices"]
    status_of = {r["InvoiceNumber"]: (r["Status"] if isinstance(r["Status"], str) else r["Status"]["Value"])
                 for r in statuses}
    assert set(status_of.values()) == {"Paid", "Cancelled"}
    retirement = _sweep(sim, token, Types="Retirement", TransactionType="AccountsReceivable")
    world = sim.state.world
    expected = sorted(f.number for f in R.iter_invoices(world)
                      if f.type == "Retirement" and f.direction == "AccountsReceivable")
    assert sorted(r["InvoiceNumber"] for r in retirement) == expected and expected
    one = expected[0]
    found = _body(_get(sim, "/public/v2/invoices", token, {"Search": one.lower()}))
    assert [r["InvoiceNumber"] for r in found["Data"]] == [one]
    by_number = _sweep(sim, token, OrderBy="InvoiceNumber")
    assert [r["InvoiceNumber"] for r in by_number] == sorted(r["InvoiceNumber"] for r in by_number)
    default = _body(_get(sim, "/public/v2/invoices", token, {"ItemsPerPage": 100}))["Data"]
    facts = [R.facts_by_number(world, r["InvoiceNumber"]) for r in default]
    assert [f.created for f in facts] == sorted((f.created for f in facts), reverse=True)  # CreatedDate desc
    bad = _get(sim, "/public/v2/invoices", token, {"Statuses": "Lost", "TransactionType": "Both"})
    assert bad.status_code == 400
    assert bad.json()["Errors"] == [
        {"Field": "Statuses", "Message": "'Lost' is not a valid invoice status."},
        {"Field": "TransactionType", "Message": "'Both' is not a valid transaction type."}]


def test_invoice_detail(sim, token):
    world = sim.state.world
    receivable = next(f for f in R.iter_invoices(world) if f.direction == "AccountsReceivable")
    payable = next(f for f in R.iter_invoices(world) if f.direction == "AccountsPayable")
    for f in (receivable, payable):
        body = _body(_get(sim, f"/public/v2/invoices/{f.number}", token))
        d = body["Data"]
        assert (body["StatusCode"], body["Meta"], d["InvoiceNumber"]) == (200, None, f.number)
        counterparty = R.customer_id(f.customer)
        payer, payee = (counterparty, R.ACCOUNT["RegistrationNumber"]) if f is receivable else (
            R.ACCOUNT["RegistrationNumber"], counterparty)
        assert (d["Payer"]["RegistrationNumber"], d["Payee"]["RegistrationNumber"]) == (payer, payee)
        main = d["MainInvoice"]
        assert main["Total"] == d["Total"] == f.total
        assert sum(i["TotalPrice"] for i in main["Items"]) == main["SubTotal"] == f.subtotal
        assert all(i["Quantity"] * i["UnitPrice"] == i["TotalPrice"] for i in main["Items"])
        assert [i["TransactionId"] for i in main["Items"]] == [it.transaction_id for it in f.items]
    unknown = _get(sim, "/public/v2/invoices/INV-REAR-2025-03-01-09999", token)
    assert (unknown.status_code, unknown.json()["Message"]) == (404, "Not found")
    other_org = _get(sim, "/public/v2/invoices/INV-ACME-2025-03-01-00001", token)
    assert (other_org.status_code, other_org.json()) == (403, SEED_ERRORS[403])


# --- spot-exchange transactions -----------------------------------------------------------------------
def test_transactions_sweep_equals_truth_and_links_invoices(sim, token, truth, invoices):
    rows = _sweep(sim, token, "/public/v2/spot-exchange/transactions")
    assert len(rows) == len({r["TransactionId"] for r in rows}) == truth["counts"]["orders"]
    assert sum(r["Price"] for r in rows) == truth["sums"]["orders"]["Price"]
    assert sum(r["MatchedPrice"] for r in rows if r["MatchedPrice"] is not None) == \
        truth["sums"]["orders"]["MatchedPrice"]
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["Status"]["Value"]] = statuses.get(r["Status"]["Value"], 0) + 1
    assert statuses == truth["orders_by_status"]
    # Every invoice item is a matched trade naming its invoice; its side follows the invoice's direction.
    tx = {r["TransactionId"]: r for r in rows}
    world = sim.state.world
    for number in (invoices[0]["InvoiceNumber"], invoices[-1]["InvoiceNumber"]):
        f = R.facts_by_number(world, number)
        for it in f.items:
            t = tx[it.transaction_id]
            assert (t["InvoiceId"], t["MatchedPrice"], t["Quantity"]) == (number, it.unit_price, it.quantity)
            assert t["Side"] == ("Sell" if f.direction == "AccountsReceivable" else "Buy")
    vn = _sweep(sim, token, "/public/v2/spot-exchange/transactions", MarketIds=R.MARKET_IDS["VN"])
    assert len(vn) == sum(1 for r in rows if r["MarketName"] == "VN I-REC Spot") > 0


# --- time axis and faults -----------------------------------------------------------------------------
def test_time_axis(fresh_sim):
    world = fresh_sim.state.world
    earlier_now = AS_OF - dt.timedelta(days=5)
    at_as_of = list(R.iter_invoices(world))
    later = R.truth(world)
    paid_since = next(f for f in at_as_of if f.created < earlier_now
                      and f.state(earlier_now)["paid_at"] is None and f.state(AS_OF)["status"] == "Paid")
    created_since = next(f for f in at_as_of if f.created > earlier_now)
    world.config.as_of = earlier_now
    earlier = R.truth(world)
    assert earlier["counts"]["invoices"] == sum(f.created <= earlier_now for f in at_as_of)
    assert earlier["counts"]["invoices"] < later["counts"]["invoices"]
    token = _token(fresh_sim)
    assert len(_sweep(fresh_sim, token)) == earlier["counts"]["invoices"]
    row = _body(_get(fresh_sim, f"/public/v2/invoices/{paid_since.number}", token))["Data"]
    status = row["Status"] if isinstance(row["Status"], str) else row["Status"]["Value"]
    assert (status, row["PaidDate"]) == (paid_since.state(earlier_now)["status"], None)
    assert _get(fresh_sim, f"/public/v2/invoices/{created_since.number}", token).status_code == 404


def test_token_ttl_fault_expires_tokens(fresh_sim):
    fresh_sim.state.faults["redex"].update(token_ttl=1.5)
    data = _grant(fresh_sim).json()["Data"]
    assert data["ExpiresIn"] == "1.5"
    assert _get(fresh_sim, "/public/v2/invoices", data["AccessToken"]).status_code == 200
    time.sleep(1.6)
    expired = _get(fresh_sim, "/public/v2/invoices", data["AccessToken"])
    assert (expired.status_code, expired.json()) == (401, SEED_ERRORS[401])
    assert 'error_description="The token expired"' in expired.headers["WWW-Authenticate"]


def test_duplicates_and_drift_faults(fresh_sim):
    token = _token(fresh_sim)

    def page(n: int) -> list[str]:
        body = _body(_get(fresh_sim, "/public/v2/invoices", token, {"CurrentPage": n, "ItemsPerPage": 50}))
        return [r["InvoiceNumber"] for r in body["Data"]]

    clean = page(1) + page(2)
    fresh_sim.state.faults["redex"].update(duplicates=True)
    dup = page(2)
    assert dup[0] == clean[49] and dup[1:] == clean[50:100]
    fresh_sim.state.faults["redex"].update(duplicates=False, drift=True)
    assert page(2) == clean[49:99]


def test_deterministic(sim, token):
    params = {"CurrentPage": 2, "ItemsPerPage": 50, "TransactionType": "AccountsPayable"}
    assert _get(sim, "/public/v2/invoices", token, params).content == \
        _get(sim, "/public/v2/invoices", token, params).content
    assert R.truth(sim.state.world) == R.truth(sim.state.world)
