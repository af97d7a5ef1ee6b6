"""Shopwave extraction end to end against the simulator: every stream equals truth (counts and exact
money, pence converted exactly in staging), token expiry and refresh, the x-accept-version and auth
failures, the api.message body check, and the staging models built with dbt."""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal

import pytest

from invoice_warehouse.engine.http import ApiError, AuthError
from invoice_warehouse.engine.runner import run_stream
from invoice_warehouse.providers import shopwave as p
from invoice_warehouse.registry import HOOKS, PROVIDERS
from invoice_warehouse.warehouse.dbt import run_dbt
from simulators import shopwave as sw
from simulators.world import World, WorldConfig
from tests.helpers import client, conn_info, day, extract, extract_and_load, query

START, END = day("2025-03-01"), day("2025-03-15")
STREAMS = ("invoices", "orders", "baskets", "transactions", "stores", "supplier_stores", "products")


@pytest.fixture(scope="module")
def loaded(sim, tmp_path_factory):
    """Every stream of [START, END) extracted and loaded, and the staging models built with dbt."""
    tmp = tmp_path_factory.mktemp("shopwave")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IWH_DATA_DIR", str(tmp))
        db = extract_and_load(sim, ["shopwave"], START, END, tmp)
        out = run_dbt(["build", "--select", "path:models/staging/shopwave"], work_db=db)
    return db, out, sw.truth(sim.state.world, START, END)


def test_registry_and_streams():
    assert HOOKS["shopwave"] is p.ShopwaveHook
    assert tuple(s.name for s in PROVIDERS["shopwave"].streams) == STREAMS
    assert set(sw.truth(World(WorldConfig(as_of=END)), START, END)["counts"]) == set(STREAMS)


def test_every_stream_equals_truth(loaded):
    db, _out, truth = loaded
    for stream in STREAMS:
        assert query(db, f"select count(*), count(distinct id) from raw_shopwave.{stream}") == \
            [(truth["counts"][stream], truth["counts"][stream])], stream
        for column, total in truth["sums"].get(stream, {}).items():
            assert query(db, f'select sum("{column}") from raw_shopwave.{stream}') == [(total,)], (stream, column)


def test_staging_builds_and_sums_equal_truth(loaded):
    db, out, truth = loaded
    assert "ERROR=0" in out and "WARN=0" in out
    inv = truth["sums"]["invoices"]
    assert query(db, "select count(*), sum(subtotal_amount), sum(tax_amount), sum(total_amount), "
                     "count(amount_paid_reported), sum(credit_amount) from staging.stg_shopwave__invoices") == [
        (truth["counts"]["invoices"], inv["totalPrice"] / 100, inv["totalVat"] / 100, inv["totalIncVat"] / 100,
         0, Decimal(0))]
    assert query(db, "select count(*), sum(line_total), sum(tax_amount) from staging.stg_shopwave__invoice_lines") \
        == [(truth["invoice_lines"], inv["totalIncVat"] / 100, inv["totalVat"] / 100)]
    tx = truth["sums"]["transactions"]
    assert query(db, "select count(*), sum(amount), count(invoice_id) from staging.stg_shopwave__payments") == [
        (truth["counts"]["transactions"], tx["amount"] / 100, 0)]
    assert query(db, "select count(*), sum(total_amount) from staging.stg_shopwave__orders") == [
        (truth["counts"]["orders"], truth["sums"]["orders"]["totalPrice"] / 100)]
    assert query(db, "select customer_type, count(*) from staging.stg_shopwave__customers group by 1 order by 1") \
        == [("store", truth["counts"]["stores"]), ("supplier_store", truth["counts"]["supplier_stores"])]
    prices = dict(query(db, "select product_id, unit_price from staging.stg_shopwave__products"))
    assert len(prices) == truth["counts"]["products"]
    for k in (0, 4, 8):  # products with a price rise (k % 4 == 0) carry two instances by now
        prod = sw.product(7, k)
        assert len(prod.instances) == 2
        assert prices[str(prod.id)] == Decimal(prod.price_at(dt.datetime(2025, 3, 15, tzinfo=dt.timezone.utc))) / 100


def test_staging_reproduces_receivables(loaded):
    db, _out, truth = loaded
    rows = query(db, "select customer_id, currency, sum(total_amount), sum(coalesce(amount_paid_reported, 0)) "
                     "from staging.stg_shopwave__invoices group by 1, 2")
    local = {sw.customer_id(n): f"C{n:03d}" for n in range(1, World.N_CUSTOMERS + 1)}
    got = {(local[cid], cur): {"invoiced": total, "paid": paid, "open": total - paid} for cid, cur, total, paid in rows}
    assert got == truth["receivables"]


def test_swql_window_is_sent_as_a_query_header():
    [(label, req)] = list(PROVIDERS["shopwave"].stream("transactions").requests_for(START, END))
    assert req.path == "/report" and req.params == {}
    assert json.loads(req.headers["query"]) == {"0": {"FROM": "Transaction", "WHERE": {"AND": [
        "Transaction.completeDate >= '2025-03-01 00:00:00'", "Transaction.completeDate < '2025-03-15 00:00:00'"]}}}
    [(_label, full)] = list(PROVIDERS["shopwave"].stream("invoices").requests_for(START, END))
    assert full.headers == {} and full.path == "/invoice"


def test_expired_token_is_refreshed_once(fresh_sim, tmp_path):
    fresh_sim.state.faults["shopwave"].update(token_ttl=0.5)
    c = client(fresh_sim, "shopwave")
    c.request_json("GET", "/status")  # the first access token
    time.sleep(0.6)  # ... has expired server-side: the next call answers 908
    spec = PROVIDERS["shopwave"]
    manifest = run_stream(c, spec, spec.stream("stores"), start=START, end=END, landing=tmp_path,
                          window_label="2025-03-01", run_id="test")
    assert manifest["records"] == World.N_CUSTOMERS
    assert manifest["token_refreshes"] == 1
    # token, /status, 908 on /store, token again, /store
    assert manifest["statuses"] == {"200": 4, "401": 1}
    assert fresh_sim.state.tokens["shopwave"].issued == 2


def test_missing_version_header_is_913(sim):
    c = client(sim, "shopwave")
    c.default_headers.pop("x-accept-version")
    with pytest.raises(ApiError) as err:
        c.request_json("GET", "/invoice")
    assert err.value.status == 400
    assert '"913"' in str(err.value) and "x-accept-version header is required" in str(err.value)
    assert str(err.value).startswith("connection 'shopwave_default': GET /shopwave/invoice failed with HTTP 400")


@pytest.mark.parametrize(("override", "status", "reason"), [
    ({"client_secret": "wrong-secret-0451"}, 401,
     '{"error":"invalid_client","error_description":"The client credentials are invalid"}'),
    ({"refresh_token": "revoked-refresh-0451"}, 400,
     '{"error":"invalid_grant","error_description":"Invalid refresh token"}'),
])
def test_auth_failure_names_the_connection_never_a_secret(sim, tmp_path, override, status, reason):
    spec = PROVIDERS["shopwave"]
    with pytest.raises(AuthError) as err:
        run_stream(client(sim, "shopwave", **override), spec, spec.stream("invoices"), start=START, end=END,
                   landing=tmp_path, window_label="2025-03-01", run_id="test")
    assert err.value.status == status
    msg = str(err.value)
    assert msg == (f"connection 'shopwave_default' was refused by POST /shopwave/oauth/token: HTTP {status} "
                   f"({reason}); check the Client ID, Client Secret and refresh token stored "
                   "in that Airflow connection (a revoked refresh token needs the merchant's consent again)")
    for secret in [*override.values(), *sw.CREDENTIALS.values()]:
        assert secret not in msg


def test_missing_refresh_token_is_a_clear_error(sim):
    with pytest.raises(ValueError, match=r"^connection 'shopwave_default' is missing refresh_token \(extra\)$"):
        client(sim, "shopwave", refresh_token="")


def test_body_check():
    assert p.body_check({"stores": {}, "api": {"message": {"success": sw.SUCCESS_TOKEN_VALID}}}) is None
    throttled = sw.error_body(919)
    assert p.body_check(throttled) == ("api.message.error 919 Cannot handle too many request: There is a limit "
                                       "for every object you can send to our server and you are exceding that.",
                                       True)
    forbidden = sw.error_body(912)
    assert p.body_check(forbidden) == ("api.message.error 912 Resource Not Allowed For Specified User: The user "
                                       "does not own this resource and its forbidden", False)


def test_partial_success_919_is_retried_not_kept(fresh_sim, tmp_path):
    sw.inject_api_errors(fresh_sim.state, 919)
    manifest = extract(fresh_sim, "shopwave", "stores", START, END, tmp_path)
    assert manifest["records"] == World.N_CUSTOMERS  # the partial half was not landed
    assert manifest["retry_reasons"] == {"body error": 1}


def test_partial_success_912_fails_fast(fresh_sim, tmp_path):
    sw.inject_api_errors(fresh_sim.state, 912)
    with pytest.raises(ApiError, match="answered with an error: api.message.error 912 Resource Not Allowed"):
        extract(fresh_sim, "shopwave", "stores", START, END, tmp_path)


def test_faults_duplicates_and_a_failing_token_endpoint(fresh_sim, tmp_path):
    f = fresh_sim.state.faults["shopwave"]
    # The first request of a run is the token grant: it meets a 5xx, a 429 and a dropped connection.
    f.update(duplicates=True, drift=True, schedule=["5xx", "429", "drop", "ok", "malformed", "html"])
    db = extract_and_load(fresh_sim, ["shopwave"], START, END, tmp_path)
    truth = sw.truth(fresh_sim.state.world, START, END)
    for stream in STREAMS:
        assert query(db, f"select count(*) from raw_shopwave.{stream}") == [(truth["counts"][stream],)], stream
    tx = truth["sums"]["transactions"]
    assert query(db, "select sum(amount), sum(tip) from raw_shopwave.transactions") == [(tx["amount"], tx["tip"])]
    landed = query(db, "select sum(rows_read) from meta.load_audit where entity = 'transactions'")[0][0]
    assert landed == truth["counts"]["transactions"] + len(range(0, truth["counts"]["transactions"], 10))
    assert f.injected == {"5xx": 1, "429": 1, "drop": 1, "malformed": 1, "html": 1}


def test_hook_form_and_test_connection(sim, monkeypatch):
    info = PROVIDERS["shopwave"].connection_type_info("invoice_warehouse.providers.shopwave.ShopwaveHook")
    assert info["connection-type"] == "shopwave"
    assert info["ui-field-behaviour"]["relabeling"] == {"host": "API base URL", "login": "Client ID",
                                                        "password": "Client Secret"}
    assert info["conn-fields"]["refresh_token"]["schema"] == {"type": ["string", "null"], "format": "password"}
    assert info["conn-fields"]["token_url"]["schema"] == {"type": ["string", "null"]}
    hook = p.ShopwaveHook()
    assert hook.conn_id == "shopwave_default"
    monkeypatch.setattr(hook, "conn_info", lambda: conn_info(sim, "shopwave"))
    assert hook.test_connection() == (True, "Connected to Shopwave (merchantstack)")


def test_token_url_default_and_override():
    from invoice_warehouse.engine.spec import ConnInfo
    assert p.token_url(ConnInfo("c", "api.merchantstack.com")) == "https://api.merchantstack.com/oauth/token"
    assert p.token_url(ConnInfo("c", "http://127.0.0.1:1/shopwave/")) == "http://127.0.0.1:1/shopwave/oauth/token"
    assert p.token_url(ConnInfo("c", "https://api.merchantstack.com", extra={
        "token_url": "https://secure.merchantstack.com/oauth/token"})) == "https://secure.merchantstack.com/oauth/token"
