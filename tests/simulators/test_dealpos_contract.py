"""The DealPOS simulator honours the contract in providers.md section 1 (seed 000): OAuth2 client
credentials, Bearer 401s, POST-as-GET reads with From/To/PageNumber/PageSize bodies, bare arrays ending
with a short page, {Data, TotalCount}, {DataArray}, IncludePayments, local datetimes without offset,
the 0001-01-01 null date, per-outlet invoice numbers, the documented rate limit, and as_of."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections import Counter
from decimal import Decimal

import pytest
import requests

from simulators import dealpos as dp
from tests.helpers import day

P = "dealpos"
API = "/api/v3"
LOCAL_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,2})?$")
FEB = {"From": "2025-02-01", "To": "2025-02-10"}
FEB_TRUTH = (day("2025-02-01"), day("2025-02-11"))


@pytest.fixture(scope="module")
def base(sim):
    """The shared simulators without DealPOS's rate limit (this module reads freely; the limit itself
    is tested on a fresh simulator below)."""
    faults = sim.state.faults[P]
    before = faults.rate_limit
    faults.update(rate_limit=None)
    yield sim.base_url(P) + API
    faults.update(rate_limit=before)


def _token(url: str, creds: dict) -> str:
    r = requests.post(f"{url}/Token/OAuth2", json=creds, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


@pytest.fixture(scope="module")
def api(sim, base):
    token = _token(base, sim.state.credentials[P])

    def call(method: str, path: str, body: dict | None = None, headers: dict | None = None, **params):
        h = {"Authorization": f"Bearer {token}", **(headers or {})}
        r = requests.request(method, f"{base}{path}", json=body, params=params or None, headers=h, timeout=30)
        return r, (json.loads(r.text, parse_float=Decimal) if r.text else None)

    return call


def _all_pages(api, path: str, body: dict, size: int, headers: dict | None = None) -> tuple[list, list[int]]:
    rows, sizes, page = [], [], 1
    while True:
        r, data = api("POST", path, {**body, "PageNumber": page, "PageSize": size}, headers)
        assert r.status_code == 200, r.text
        rows += data
        sizes.append(len(data))
        if len(data) < size:
            return rows, sizes
        page += 1


def test_default_faults_are_the_documented_rate_limit():
    assert dp.DEFAULT_FAULTS == {"rate_limit": (50, 180)}


def test_token_grant_and_its_errors(sim, base):
    creds = sim.state.credentials[P]
    r = requests.post(f"{base}/Token/OAuth2", json=creds, timeout=10)
    body = r.json()
    assert r.status_code == 200 and set(body) == {"access_token", "token_type", "expires_in", "expiredat"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", dp.TOKEN_LIFETIME)
    assert LOCAL_TS.match(body["expiredat"])
    wrong = {**creds, "client_secret": "00000000-0000-4000-8000-000000000000"}
    r = requests.post(f"{base}/Token/OAuth2", json=wrong, timeout=10)
    assert (r.status_code, r.json()) == (401, {"Message": "Invalid client_id or client_secret"})
    r = requests.post(f"{base}/Token/OAuth2", json={**creds, "client_secret": "hunter2"}, timeout=10)
    assert (r.status_code, r.json()) == (400, {"Message": "client_secret must be a GUID"})
    r = requests.post(f"{base}/Token/OAuth2", json={"client_id": creds["client_id"]}, timeout=10)
    assert (r.status_code, r.json()) == (400, {"Message": "client_id and client_secret are required"})


def test_bearer_token_required_and_expiry(sim, base):
    denied = {"Message": "Authorization has been denied for this request."}
    r = requests.get(f"{base}/Outlet", timeout=10)
    assert (r.status_code, r.json()) == (401, denied)
    r = requests.get(f"{base}/Outlet", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert (r.status_code, r.json()) == (401, denied)
    faults = sim.state.faults[P]
    faults.update(token_ttl=0.2)  # announced 3600 s, dead after 0.2 s
    try:
        token = _token(base, sim.state.credentials[P])
    finally:
        faults.update(token_ttl=None)
    h = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{base}/Outlet", headers=h, timeout=10).status_code == 200
    time.sleep(0.3)
    r = requests.get(f"{base}/Outlet", headers=h, timeout=10)
    assert (r.status_code, r.json()) == (401, denied)


def test_bodyless_get_declaring_json_fails_with_500(api):
    r, body = api("GET", "/Outlet", headers={"Content-Type": "application/json"})
    assert (r.status_code, body) == (500, {"Message": "An error has occurred."})
    r, _ = api("GET", "/Outlet")
    assert r.status_code == 200


def test_invoice_lists_page_with_short_last_page_and_counts_agree(sim, api):
    truth = sim.state.truth(P, *FEB_TRUTH)
    n_any = truth["counts"]["invoices"]
    n_active = n_any - truth["nested"]["cancelled_invoices"]
    size = 40
    rows, sizes = _all_pages(api, "/Invoice/MultipleOutlet", {**FEB, "Status": "Any"}, size)
    assert len(rows) == len({r["ID"] for r in rows}) == n_any
    assert sizes == [size] * (n_any // size) + [n_any % size]
    # default Status is Active: voids are left out
    active, _ = _all_pages(api, "/Invoice/MultipleOutlet", FEB, 500)
    assert len(active) == n_active and all(r["Status"] == "Active" for r in active)
    _, count = api("POST", "/Invoice/GetCountMultipleOutlet", {**FEB, "Status": "Any"})
    _, counted_active = api("GET", "/Invoice/GetCountMultipleOutlet", FEB)  # GET with a JSON body too
    _, with_total = api("POST", "/Invoice/MultipleOutlet/WithTotalCount", {**FEB, "PageNumber": 2, "PageSize": 7})
    assert (count, counted_active, with_total["TotalCount"]) == (n_any, n_active, n_active)
    assert [r["ID"] for r in with_total["Data"]] == [r["ID"] for r in active[7:14]]
    _, past = api("POST", "/Invoice/MultipleOutlet", {**FEB, "PageNumber": 99, "PageSize": 500})
    assert past == []
    # query-string parameters work as well as the body, names case-insensitively
    _, q = api("GET", "/Invoice/GetCountMultipleOutlet", **{"from": FEB["From"], "TO": FEB["To"]})
    assert q == n_active


def test_filters_partition_the_invoices(sim, api):
    truth = sim.state.truth(P, *FEB_TRUTH)
    n_active = truth["counts"]["invoices"] - truth["nested"]["cancelled_invoices"]
    by_state = {s: api("POST", "/Invoice/GetCountMultipleOutlet", {**FEB, "PaymentState": s})[1]
                for s in ("Paid", "Partial", "Unpaid")}
    assert sum(by_state.values()) == n_active and all(by_state.values())
    by_tag = [api("POST", "/Invoice/GetCountMultipleOutlet", {**FEB, "Tag": [t]})[1] for t in dp.TAGS]
    assert sum(by_tag) == n_active
    names = [o.name for o in dp.active_outlets(dt.date(2025, 2, 5))]
    by_outlet = [api("POST", "/Invoice/GetCountMultipleOutlet", {**FEB, "Outlet": [o]})[1] for o in names]
    assert sum(by_outlet) == n_active
    _, cancelled = api("POST", "/Invoice/GetCountMultipleOutlet", {**FEB, "Status": "Cancelled"})
    assert cancelled == truth["nested"]["cancelled_invoices"]


def test_with_variant_lines_and_payments_only_with_the_header(sim, api):
    truth = sim.state.truth(P, *FEB_TRUTH)
    body = {**FEB, "Status": "Any"}
    plain, _ = _all_pages(api, "/Invoice/MultipleOutlet/WithVariant", body, 500)
    assert all("Variants" in r and "Payments" not in r for r in plain)
    rows, _ = _all_pages(api, "/Invoice/MultipleOutlet/WithVariant", body, 500, {"IncludePayments": "true"})
    assert sum(len(r["Variants"]) for r in rows) == truth["nested"]["invoice_lines"]
    assert sum(len(r["Payments"]) for r in rows) == truth["nested"]["invoice_payments"]
    for r in rows:
        assert r["Amount"] == sum(v["Sales"] for v in r["Variants"])
    active = [r for r in rows if r["Status"] == "Active"]
    assert sum(p["Amount"] for r in active for p in r["Payments"]) == sum(
        c["paid"] for c in truth["receivables"].values())
    assert sum(r["Amount"] - sum(p["Amount"] for p in r["Payments"]) - r["ReturnAmount"] for r in active) == sum(
        c["open"] for c in truth["receivables"].values())
    assert all(not r["Payments"] and r["ReturnAmount"] == 0 for r in rows if r["Status"] == "Cancelled")
    assert {r["Payment"] for r in active} == {"Paid", "Partial", "Unpaid"}
    # a return of an invoice already paid is refunded at once, as a negative payment
    refunds = [(r, p) for r in rows for p in r["Payments"] if p["Amount"] < 0]
    assert refunds and all(p["Note"] == "Refund RT" + r["Number"] and r["ReturnAmount"] > 0 for r, p in refunds)


def test_money_is_exact_json_numbers_and_datetimes_are_local(api):
    r, rows = api("POST", "/Invoice/MultipleOutlet/WithVariant", {**FEB, "PageSize": 500},
                  {"IncludePayments": "true"})
    assert '"Amount":"' not in r.text and re.search(r'"Tax":\d+\.\d{1,2}[,}]', r.text)  # numbers, decimals exact
    assert any(isinstance(p["Amount"], Decimal) for row in rows for p in row["Payments"])  # instalments: cents
    for row in rows:
        assert LOCAL_TS.match(row["Created"]) and all(LOCAL_TS.match(p["Date"]) for p in row["Payments"])
        assert row["Date"].endswith("T00:00:00")
        if row["Tag"] == "Wholesale":
            due = dt.date.fromisoformat(row["Date"][:10]) + dt.timedelta(days=30)
            assert row["Due"] == f"{due}T00:00:00"
        else:
            assert row["Due"] == "0001-01-01T00:00:00"  # the null date
    # local time: every sale is made during opening hours, 08:00-22:00 WIB
    assert all(8 <= int(row["Created"][11:13]) < 22 for row in rows)


def test_numbers_repeat_across_outlets_and_lookups(api):
    rows, _ = _all_pages(api, "/Invoice/MultipleOutlet", {**FEB, "Status": "Any"}, 500)
    repeated = [n for n, c in Counter(r["Number"] for r in rows).items() if c > 1]
    assert repeated  # unique only per outlet
    for r in [r for r in rows if r["Number"] == repeated[0]]:
        _, by_number = api("GET", "/Invoice/Detail", Number=r["Number"], Outlet=r["Outlet"])
        assert by_number["ID"] == r["ID"]
        outlet_id = dp.OUTLET_BY_NAME[r["Outlet"].lower()].id
        _, by_outlet_id = api("GET", "/Invoice/IDByNumber", Number=r["Number"], OutletID=outlet_id)
        assert by_outlet_id == {"ID": r["ID"]}
        _, by_body = api("POST", "/Invoice/IDByNumber", {"Number": r["Number"], "Outlet": r["Outlet"]})
        assert by_body == {"ID": r["ID"]}
        _, detail = api("GET", "/Invoice/Detail", ID=r["ID"])
        assert (detail["Number"], detail["Sales"], detail["DueDate"]) == (r["Number"], r["Amount"], r["Due"])
        assert detail["Gross"] - detail["DiscountTotal"] == detail["Sales"]
    missing = {"Message": "Invoice not found"}
    r, body = api("GET", "/Invoice/Detail", ID=rows[0]["ID"][:-1] + "f")
    assert (r.status_code, body) == (404, missing)
    r, body = api("GET", "/Invoice/IDByNumber", Number="25.02.01999", Outlet="Kemang")
    assert (r.status_code, body) == (404, missing)


def test_returns_credit_their_invoice(sim, api):
    start, end = day("2025-01-01"), day("2025-03-15")
    truth = sim.state.truth(P, start, end)
    body = {"From": "2025-01-01", "To": "2025-03-14"}
    returns, _ = _all_pages(api, "/Invoice/Return", body, 30)
    assert len(returns) == truth["counts"]["returns"] > 30
    assert sum(r["Amount"] for r in returns) == truth["sums"]["returns"]["Amount"]
    for ret in returns[:5]:
        _, inv = api("GET", "/Invoice/Detail", ID=ret["InvoiceID"])
        assert (inv["Number"], inv["ReturnAmount"], inv["Fulfillment"]) == (ret["ReferenceNumber"],
                                                                          ret["Amount"], "Returned")
        assert ret["Number"] == "RT" + inv["Number"] and ret["Outlet"] == inv["Outlet"]


def test_payments_received_by_outlet(sim, api):
    truth = sim.state.truth(P, *FEB_TRUTH)
    r, groups = api("POST", "/Payment/Invoice/p", FEB)
    assert r.status_code == 200
    _, via_get = api("GET", "/Payment/Invoice", FEB)
    assert via_get == groups
    payments = [p for g in groups for p in g["Payments"]]
    assert len(payments) == truth["counts"]["payments_received"]
    assert sum(p["Amount"] for p in payments) == truth["sums"]["payments_received"]["Amount"]
    assert {g["Outlet"] for g in groups} <= {o.name for o in dp.OUTLETS}
    assert all("2025-02-01" <= p["Date"][:10] <= "2025-02-10" for p in payments)
    # POST Payment/Invoice adds a payment (a write): not a read
    r, body = api("POST", "/Payment/Invoice", FEB)
    assert (r.status_code, body) == (400, {"Message": "Invoice Number and Outlet are required to add a payment"})
    one = next(p for p in payments if p["Amount"] > 0)
    _, of_invoice = api("GET", "/Payment/Invoice/Detail/ID", ID=one["InvoiceID"])
    assert one["ID"] in {p["ID"] for p in of_invoice}


def test_outlets_customers_products_as_of(sim, api):
    as_of = sim.state.world.as_of
    truth = sim.state.truth(P)
    _, outlets = api("GET", "/Outlet")
    assert len(outlets) == truth["counts"]["outlets"] == len([o for o in dp.OUTLETS if o.created() <= as_of])
    assert "Medan Kota" not in {o["Name"] for o in outlets}  # opens after as_of
    _, open_only = api("GET", "/Outlet", Suspended="false")
    assert {o["Name"] for o in outlets} - {o["Name"] for o in open_only} == {"Bekasi"}  # closed 2025-02-01
    sizes, customers, page = [], [], 1
    while True:
        _, rows = api("GET", "/Customer", PageNumber=page, PageSize=15)
        customers += rows
        sizes.append(len(rows))
        if len(rows) < 15:
            break
        page += 1
    assert sizes == [15, 15, 10] and len(customers) == truth["counts"]["customers"]
    assert {c["ID"] for c in customers} == {dp.customer_id(n) for n in range(1, 41)}
    assert all(c["ExpiredDate"] == "0001-01-01T00:00:00" for c in customers)
    _, products = api("GET", "/Product", PageNumber=1, PageSize=100)
    assert set(products) == {"DataArray"} and len(products["DataArray"]) == truth["counts"]["products"]
    created = [p["Created"] for p in products["DataArray"]]
    assert max(created) < "2025-03-15" and "2025-04-05T10:00:00" not in created
    # the invoices' CustomerID is the Customer endpoint's ID
    _, rows = api("POST", "/Invoice/MultipleOutlet", {**FEB, "PageSize": 500})
    assert {r["CustomerID"] for r in rows} <= {c["ID"] for c in customers}


def test_nothing_exists_after_as_of(sim, api):
    as_of_local = sim.state.world.as_of.astimezone(dp.LOCAL).strftime("%Y-%m-%dT%H:%M:%S")
    body = {"From": "2025-03-10", "To": "2025-03-31", "Status": "Any"}
    rows, _ = _all_pages(api, "/Invoice/MultipleOutlet/WithVariant", body, 500, {"IncludePayments": "true"})
    assert len(rows) == sim.state.truth(P, day("2025-03-10"), day("2025-04-01"))["counts"]["invoices"] > 0
    assert max(r["Created"] for r in rows) <= as_of_local
    assert max(p["Date"] for r in rows for p in r["Payments"]) <= as_of_local


def test_validation_errors(api):
    cases = [({"To": "2025-02-01"}, "From and To are required (format yyyy-mm-dd)"),
             ({"From": "01-02-2025", "To": "2025-02-01"}, "Invalid From date '01-02-2025', expected format yyyy-mm-dd"),
             ({**FEB, "PageSize": 1001}, "PageSize must be between 1 and 1000"),
             ({**FEB, "PageNumber": 0}, "PageNumber must be 1 or greater"),
             ({**FEB, "Status": "Voided"}, "Status must be one of Active, Cancelled, Any")]
    for body, msg in cases:
        r, got = api("POST", "/Invoice/MultipleOutlet", body)
        assert (r.status_code, got) == (400, {"Message": msg})


def test_drift_and_duplicates_repeat_records_across_pages(sim, api):
    faults = sim.state.faults[P]
    body = {**FEB, "PageSize": 20}
    _, p1 = api("POST", "/Invoice/MultipleOutlet", {**body, "PageNumber": 1})
    _, clean = api("POST", "/Invoice/MultipleOutlet", {**body, "PageNumber": 2})
    try:
        faults.update(drift=True)
        _, drifted = api("POST", "/Invoice/MultipleOutlet", {**body, "PageNumber": 2})
        faults.update(drift=False, duplicates=True)
        _, duplicated = api("POST", "/Invoice/MultipleOutlet", {**body, "PageNumber": 2})
    finally:
        faults.update(drift=False, duplicates=False)
    assert [r["ID"] for r in drifted] == [p1[-1]["ID"]] + [r["ID"] for r in clean[:-1]]
    assert [r["ID"] for r in duplicated] == [p1[-1]["ID"]] + [r["ID"] for r in clean]


def test_rate_limit_50_per_window_with_headers(fresh_sim):
    faults = fresh_sim.state.faults[P]
    assert faults.rate_limit == (50, 180.0)  # DEFAULT_FAULTS applied
    faults.update(rate_limit=(50, 5.0))  # same quota, a shorter window: the test stays fast
    url = fresh_sim.base_url(P) + API
    token = _token(url, fresh_sim.state.credentials[P])  # the token request counts too
    s = requests.Session()
    h = {"Authorization": f"Bearer {token}"}
    remaining = [int(s.get(f"{url}/Outlet", headers=h, timeout=10).headers["RateLimit-Remaining"])
                 for _ in range(49)]
    assert remaining == list(range(48, -1, -1))
    r = s.get(f"{url}/Outlet", headers=h, timeout=10)
    assert r.status_code == 429 and r.json() == {"Message": "API calls quota exceeded! maximum admitted 50 per 5 seconds"}
    assert (r.headers["RateLimit-Limit"], r.headers["RateLimit-Policy"]) == ("50", "50;w=5")
    assert 1 <= int(r.headers["Retry-After"]) <= 5
    assert faults.injected["rate_limited"] == 1
