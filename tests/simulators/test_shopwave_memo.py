"""The Shopwave simulator's state-keyed record memo serves exactly the bytes a fresh rendering gives.

``GET /invoice`` and ``GET /order`` (unpaged: one id-keyed map of every record) keep each record's JSON
bytes under a ``RecordKey`` naming the record and its state (an invoice has none: it never changes; an
order's is whether it is completed), not ``as_of``: after the daily move of the clock only the new and
the newly completed records are rendered again. Bodies are compared byte for byte with the un-memoised
path (records rendered, the whole map dumped, as ``answer`` does) but for ``executionTime_milliSeconds``,
the one field that depends on the wall clock, which both sides write as 0.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from fastapi.testclient import TestClient

from simulators import shopwave as S
from simulators.jsonbody import MEMO_BYTES, BytesMemo, RecordKey, dumps, json_response
from simulators.server import SimState, create_app
from simulators.world import WorldConfig

UTC = dt.timezone.utc
#: A small exact world: 8 supplier invoices and 20 baskets a day from 2025-01-01; the clock at midnight of
#: 2025-01-21 (160 invoices, 89 orders of which 81 completed), then the daily run one day later (168
#: invoices; 94 orders, 87 completed: 5 new orders, 6 completed overnight).
AS_OF = dt.datetime(2025, 1, 21, tzinfo=UTC)
NEXT = AS_OF + dt.timedelta(days=1)
PER_DAY = {"shopwave": 8, "shopwave-basket": 20}
#: path -> (map key, records at AS_OF, records at NEXT, records new or changed by the move)
EXPECTED = {"/invoice": ("invoices", 160, 168, 8), "/order": ("orders", 89, 94, 5 + 6)}
API_V2 = {"success": S.SUCCESS_TOKEN_VALID}
ELAPSED = re.compile(rb'"executionTime_milliSeconds":\d+')


def _connect(app, prefix: str = "") -> TestClient:
    """A client of ``app`` holding an access token (the refresh-token grant) and sending version 2.0."""
    client = TestClient(app)
    grant = client.post(f"{prefix}/oauth/token", data={"grant_type": "refresh_token", **S.CREDENTIALS})
    client.headers.update({"Authorization": f"Bearer {grant.json()['access_token']}", "x-accept-version": "2.0"})
    return client


def _client(lines_per_invoice: int | None = None, memo_bytes: int | None = None, **faults):
    state = SimState(WorldConfig(seed=7, as_of=AS_OF, per_day=dict(PER_DAY), lines_per_invoice=lines_per_invoice))
    state.faults["shopwave"].update(**faults)
    app = S.make_app(state, memo_bytes=memo_bytes)
    return state, app.state.record_memo, _connect(app)


def _get(client: TestClient, path: str, **headers: str) -> bytes:
    """The body, with the elapsed time written as 0."""
    resp = client.get(path, headers=headers)
    assert resp.status_code == 200, resp.text
    assert (resp.headers["content-type"], resp.headers["x-api-version"]) == ("application/json", "2.0")
    assert int(resp.headers["content-length"]) == len(resp.content)
    return ELAPSED.sub(b'"executionTime_milliSeconds":0', resp.content)


def _old(state: SimState, path: str, message=API_V2, keep=lambda rec: True) -> bytes:
    """The body as the endpoint built it before the memo: every record rendered, then the whole map dumped."""
    world = state.world
    if path == "/invoice":
        recs = [S.render_invoice(f) for f in S.iter_invoices(world)]
    else:
        recs = [S.render_order(f, world.as_of) for f in S.iter_orders(world)]
    api = {"message": message, "codeBaseVersion": "2.0", "executionTime_milliSeconds": 0}
    return json_response({EXPECTED[path][0]: {str(r["id"]): r for r in recs if keep(r)}, "api": api}).body


def _map(body: bytes, path: str) -> dict[str, dict]:
    return json.loads(body)[EXPECTED[path][0]]


@pytest.mark.parametrize("path", ["/invoice", "/order"])
@pytest.mark.parametrize("lines_per_invoice", [None, 3])
def test_lists_are_the_unmemoised_bytes_cold_warm_and_after_a_day(path, lines_per_invoice):
    state, memo, client = _client(lines_per_invoice)
    _key, n_before, n_after, renewed = EXPECTED[path]
    cold = _get(client, path)
    assert cold == _old(state, path) and len(_map(cold, path)) == n_before
    assert (len(memo), memo.misses, memo.hits) == (n_before, n_before, 0)
    assert _get(client, path) == cold
    assert (len(memo), memo.misses, memo.hits) == (n_before, n_before, n_before)

    state.world.config.as_of = NEXT  # the daily run: only the new records and the changed ones are rendered
    daily = _get(client, path)
    assert daily == _old(state, path) and len(_map(daily, path)) == n_after
    assert (len(memo), memo.misses, memo.hits) == (n_before + renewed, n_before + renewed,
                                                   n_before + n_after - renewed)
    state.world.config.as_of = AS_OF  # and back: yesterday's bytes, all from the memo
    assert _get(client, path) == cold and memo.misses == n_before + renewed
    if path == "/invoice":
        lines = {len(rec["invoiceItems"]) for rec in _map(cold, path).values()}
        assert lines == ({3} if lines_per_invoice == 3 else {1, 2, 3, 4})


def test_orders_completed_overnight_are_served_completed():
    state, memo, client = _client()
    before = _map(_get(client, "/order"), "/order")
    state.world.config.as_of = NEXT
    after = _map(_get(client, "/order"), "/order")
    changed = sorted(k for k in before if before[k] != after[k])
    assert changed == ["801700004", "801700016", "801900006", "801900007", "801900010", "801900018"]
    assert len(after) - len(before) == 5 and set(before) < set(after)
    old, new = before["801700004"], after["801700004"]
    assert (old["completed"], old["completeDate"]) == (False, None)
    assert (new["completed"], new["completeDate"]) == (True, "2025-01-21T12:26:44.870Z")
    assert {k: v for k, v in old.items() if k not in ("completed", "completeDate")} == {
        k: v for k, v in new.items() if k not in ("completed", "completeDate")}
    key = RecordKey(S.render_order, (7,), 801_700_004, False)
    assert key in memo and key._replace(state=True) in memo  # both states, each under its own key


def test_invoices_never_change_so_the_daily_run_renders_only_the_new_ones():
    state, memo, client = _client(3)
    before = _map(_get(client, "/invoice"), "/invoice")
    state.world.config.as_of = NEXT
    after = _map(_get(client, "/invoice"), "/invoice")
    assert {k: after[k] for k in before} == before
    assert sorted(set(after) - set(before)) == [str(2_000_001 + i) for i in range(8)]  # 2025-01-21's invoices
    assert RecordKey(S.invoice_record, (7, 3), 1, ()) in memo and memo.misses == 168


@pytest.mark.parametrize("path, headers, keep, counts", [
    ("/invoice", {"invoiceId": "1,2,1900008,2000001"}, lambda r: r["id"] in (1, 2, 1_900_008, 2_000_001), (3, 4)),
    ("/invoice", {"storeIds": "1004,1005"}, lambda r: r["storeId"] in (1004, 1005), (22, 23)),
    ("/order", {"orderIds": "801700004,801700016,1"}, lambda r: r["id"] in (801_700_004, 801_700_016), (2, 2)),
    ("/order", {"storeIds": "1002", "completed": "false"}, lambda r: r["storeId"] == 1002 and not r["completed"],
     (2, 4)),  # 801700004 completes overnight; three new orders are still open
    ("/order", {"completed": "true"}, lambda r: r["completed"], (81, 87)),
])
def test_filtered_lists_are_the_unmemoised_bytes(path, headers, keep, counts):
    state, memo, client = _client()
    off_state, off, plain = _client(memo_bytes=0)
    _get(client, path)  # the memo holds every record: the filters pick from it
    for as_of, count in zip((AS_OF, NEXT), counts, strict=True):
        state.world.config.as_of = off_state.world.config.as_of = as_of
        got = _get(client, path, **headers)
        assert got == _get(plain, path, **headers) == _old(state, path, keep=keep)
        assert len(_map(got, path)) == count
    assert len(off) == 0


def test_faults_of_the_report_leave_the_lists_alone_and_api_errors_halve_them_alike():
    state, memo, client = _client(drift=True, duplicates=True)  # they act on /report only
    assert _get(client, "/invoice") == _old(state, "/invoice")
    assert _get(client, "/order") == _old(state, "/order")
    S.inject_api_errors(state, 899)
    partial = json.loads(_get(client, "/order"))  # from the memo, halved, with the error
    full = _map(_old(state, "/order"), "/order")
    assert list(partial["orders"].items()) == list(full.items())[: 89 // 2]
    status, code, title, details = S.ERRORS[899]
    assert partial["api"]["message"]["error"] == {"899": {"id": 899, "code": code, "statusCode": status,
                                                          "title": title, "details": details}}
    assert _get(client, "/order", **{"x-accept-version": "1.0"}) == _old(
        state, "/order", message={**API_V2, "warning": S.WARNING_OLD_VERSION})


def test_changing_lines_per_invoice_or_the_seed_is_not_served_stale():
    state, memo, client = _client()
    assert {len(r["invoiceItems"]) for r in _map(_get(client, "/invoice"), "/invoice").values()} == {1, 2, 3, 4}
    state.world.config.lines_per_invoice = 3
    assert _get(client, "/invoice") == _old(state, "/invoice")
    assert {len(r["invoiceItems"]) for r in _map(_get(client, "/invoice"), "/invoice").values()} == {3}
    state.world.config.seed = 8
    for path in ("/invoice", "/order"):
        assert _get(client, path) == _old(state, path)
    assert memo.misses == len(memo) == 3 * 160 + 97  # invoices of (7, None), (7, 3), (8, 3); orders of seed 8


def test_the_real_clock_is_not_memoised():
    state, memo, client = _client()
    state.world.config.as_of = None
    assert client.get("/invoice").status_code == 200 and client.get("/order").status_code == 200
    assert len(memo) == 0 and memo.hits == memo.misses == 0


def test_the_byte_bound_evicts_the_oldest_records_and_bodies_stay_exact():
    state, _, full = _client()
    orders = list(S.iter_orders(state.world))
    sizes = [len(dumps(S.render_order(f, AS_OF))) + BytesMemo.ENTRY_OVERHEAD for f in orders]
    bound = sum(sizes[-5:])  # exactly the five newest orders
    state, memo, client = _client(memo_bytes=bound)
    body = _get(client, "/order")
    assert body == _get(full, "/order") == _old(state, "/order")
    assert memo.size == bound and [k.ident for k in memo.keys()] == [S.order_id(f.id) for f in orders[-5:]]
    assert _get(client, "/order") == body  # a scan bigger than the bound: it misses, still exact
    assert memo.size <= bound and (memo.hits, memo.misses) == (5, 89 + 89 - 5)  # only the last five were kept
    _, off, plain = _client(memo_bytes=0)
    assert _get(plain, "/order") == body and len(off) == 0


def test_the_admin_api_reports_the_memo():
    state = SimState(WorldConfig(seed=7, as_of=AS_OF, per_day=dict(PER_DAY)))
    client = _connect(create_app(state), "/shopwave")
    for _ in range(2):
        assert client.get("/shopwave/invoice").status_code == 200
    memo = client.get("/_sim/memo/shopwave").json()
    assert {k: memo[k] for k in ("memo", "entries", "hits", "misses", "max_bytes")} == {
        "memo": True, "entries": 160, "hits": 160, "misses": 160, "max_bytes": MEMO_BYTES}
    assert memo["bytes"] > 160 * BytesMemo.ENTRY_OVERHEAD
