"""The Akinon simulator's rendered-record memo serves exactly the bytes a fresh rendering gives.

Pages and details are compared byte for byte with the un-memoised path (``json_response`` of the dict
built from ``render``/``render_order``, as ``drf_list`` built it before the memo), cold and warm, with and
without ``lines_per_invoice``, with the ``drift`` and ``duplicates`` faults; moving ``as_of`` (or the
config) serves the new states, never a stale record; the byte bound evicts least recently used first.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading

import pytest
from fastapi.testclient import TestClient
from starlette.datastructures import URL

from simulators import akinon
from simulators.jsonbody import BytesMemo, dumps, json_response, with_array
from simulators.server import SimState
from simulators.world import World, WorldConfig

UTC = dt.timezone.utc
INVOICES = "/api/v1/oms/invoices/"
ORDERS = "/api/v1/oms/orders/"
AUTH = {"Authorization": f"Token {akinon.CREDENTIALS['token']}"}
#: A small exact world: 25 invoices a day from 2025-01-01, the clock at midnight of 2025-01-11 (250 exist).
AS_OF = dt.datetime(2025, 1, 11, tzinfo=UTC)
LATER = dt.datetime(2025, 1, 20, tzinfo=UTC)  # 475 exist
PER_DAY = {"akinon": 25}
LIMIT = 40
RENDER = {INVOICES: akinon.render, ORDERS: akinon.render_order}


def _client(lines_per_invoice: int | None = None, memo_bytes: int | None = None, **faults):
    state = SimState(WorldConfig(seed=7, as_of=AS_OF, per_day=dict(PER_DAY), lines_per_invoice=lines_per_invoice))
    state.faults["akinon"].update(**faults)
    app = akinon.make_app(state, memo_bytes=memo_bytes)
    return state, app.state.record_memo, TestClient(app)


def _old_page(state: SimState, path: str, page: int, params: str, gte=None, lt=None) -> bytes:
    """The page as drf_list rendered it before the memo: records rendered, then json_response."""
    world, faults = state.world, state.faults["akinon"]
    as_of = world.as_of
    keys = [(f.day, f.index) for f in akinon.iter_facts(world, gte, lt)]
    count = len(keys)
    pages = max(1, math.ceil(count / LIMIT))
    lo = (page - 1) * LIMIT
    if faults.drift and page > 1:
        lo -= 1
    chunk = keys[lo: lo + LIMIT]
    if faults.duplicates and page > 1 and chunk:
        chunk = [keys[lo - 1], *chunk] if lo >= 1 else chunk
    results = [RENDER[path](world, akinon.facts(world, d, i), as_of) for d, i in chunk]
    base = str(URL(f"http://testserver{path}?{params}&page={page}").remove_query_params(["page"]))
    nxt = f"{base}&page={page + 1}" if page < pages else None
    prev = None if page == 1 else (f"{base}&page={page - 1}" if page > 2 else base)
    return json_response({"count": count, "next": nxt, "previous": prev, "results": results}).body


def _page(client: TestClient, path: str, page: int, params: str = f"limit={LIMIT}"):
    resp = client.get(f"{path}?{params}&page={page}", headers=AUTH)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    assert int(resp.headers["content-length"]) == len(resp.content)
    return resp.content


# --- with_array and BytesMemo on their own ------------------------------------------------------------
def test_with_array_is_dumps_of_the_whole_object():
    recs = [{"a": "İptal Edildi", "b": [1, None]}, {"c": {}}]
    head = {"count": 2, "next": "http://x/?a=ç&page=2", "previous": None}
    assert with_array(head, "results", [dumps(r) for r in recs]) == dumps({**head, "results": recs})
    assert with_array(head, "results", []) == dumps({**head, "results": []})
    assert with_array({}, "results", [b"1", b"2"]) == b'{"results":[1,2]}'
    assert with_array({"count": 0, "next": None}, "r", []) == b'{"count":0,"next":null,"r":[]}'


def test_bytes_memo_evicts_least_recently_used_within_the_byte_bound():
    over = BytesMemo.ENTRY_OVERHEAD
    memo = BytesMemo(max_bytes=3 * (10 + over))  # room for three 10-byte values
    calls: list[str] = []

    def make(k):
        calls.append(k)
        return k.encode() * 10

    assert memo.get_many(["a", "b", "c"], make) == [b"a" * 10, b"b" * 10, b"c" * 10]
    assert (memo.size, len(memo), memo.keys()) == (3 * (10 + over), 3, ["a", "b", "c"])
    assert memo.get("a", lambda: b"never") == b"a" * 10  # a hit: "a" becomes the most recent
    assert memo.keys() == ["b", "c", "a"]
    assert memo.get_many(["d"], make) == [b"d" * 10]
    assert memo.keys() == ["c", "a", "d"] and "b" not in memo  # the oldest went
    assert memo.size == 3 * (10 + over) <= memo.max_bytes
    memo.get_many(["e", "e", "a"], make)  # a key twice in one call is rendered once
    assert calls == ["a", "b", "c", "d", "e"]
    assert memo.keys() == ["d", "a", "e"]
    assert (memo.hits, memo.misses) == (2, 5)
    big = memo.get("big", lambda: b"x" * (3 * (10 + over)))  # alone over the bound: served, not kept
    assert len(big) == 3 * (10 + over) and "big" not in memo and memo.keys() == ["d", "a", "e"]
    assert memo.size == 3 * (10 + over)


def test_bytes_memo_is_consistent_under_threads():
    memo = BytesMemo(max_bytes=50 * (8 + BytesMemo.ENTRY_OVERHEAD))
    errors: list[str] = []

    def work(t: int):
        for n in range(2000):
            keys = [(n * 7 + t + j) % 120 for j in range(5)]
            got = memo.get_many(keys, lambda k: b"%08d" % k)
            if got != [b"%08d" % k for k in keys]:
                errors.append(f"{t}/{n}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(memo) == 50 and memo.size == 50 * (8 + BytesMemo.ENTRY_OVERHEAD) == memo.max_bytes
    assert all(memo.get(k, lambda: b"miss") == b"%08d" % k for k in memo.keys())


# --- the app: byte identity ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", [INVOICES, ORDERS])
@pytest.mark.parametrize("lines_per_invoice", [None, 3])
@pytest.mark.parametrize("fault", [None, "drift", "duplicates"])
def test_pages_are_the_unmemoised_bytes_cold_and_warm(path, lines_per_invoice, fault):
    state, memo, client = _client(lines_per_invoice, **({fault: True} if fault else {}))
    pages = (1, 2, 3, 7)  # 250 records in pages of 40: the last (7th) holds 10
    cold = {n: _page(client, path, n) for n in pages}
    rendered = len(memo)
    warm = {n: _page(client, path, n) for n in pages}
    assert warm == cold
    assert len(memo) == rendered  # the warm pass rendered nothing
    for n in pages:
        assert cold[n] == _old_page(state, path, n, f"limit={LIMIT}")
    bodies = {n: json.loads(cold[n]) for n in pages}
    assert [b["count"] for b in bodies.values()] == [250] * 4
    sizes = [len(b["results"]) for b in bodies.values()]
    first_ids = [b["results"][0]["id"] for b in bodies.values()]
    if fault is None:
        assert sizes == [40, 40, 40, 10] and first_ids == [1, 10016, 30006, 90016]
        assert rendered == 130
    elif fault == "drift":  # each later page starts one record early
        assert sizes == [40, 40, 40, 11] and first_ids == [1, 10015, 30005, 90015]
        assert rendered == 130
    else:  # each later page also repeats the previous page's last record
        assert sizes == [40, 41, 41, 11] and first_ids == [1, 10015, 30005, 90015]
        assert rendered == 131  # page 7 repeats a record of page 6, not served before
    assert bodies[1]["next"] == f"http://testserver{path}?limit=40&page=2" and bodies[1]["previous"] is None
    assert bodies[2]["previous"] == f"http://testserver{path}?limit=40"
    assert bodies[7]["next"] is None and bodies[7]["previous"] == f"http://testserver{path}?limit=40&page=6"
    n_lines = {len(r.get("invoiceitem_set") or r["orderitem_set"]) for r in bodies[1]["results"]}
    assert n_lines == ({3} if lines_per_invoice == 3 else {1, 2, 3, 4})


@pytest.mark.parametrize("path", [INVOICES, ORDERS])
def test_filtered_pages_and_details_are_the_unmemoised_bytes(path):
    state, memo, client = _client()
    gte, lt = dt.datetime(2025, 1, 4, tzinfo=UTC), dt.datetime(2025, 1, 7, tzinfo=UTC)
    params = f"limit={LIMIT}&modified_date__gte=2025-01-04T00:00:00Z&modified_date__lt=2025-01-07T00:00:00Z"
    first = json.loads(_page(client, path, 1, params))
    assert first["count"] == 72  # = truth(world, gte, lt)["counts"]["invoices"]
    assert first["next"] == (f"http://testserver{path}?limit=40&modified_date__gte=2025-01-04T00%3A00%3A00Z"
                             "&modified_date__lt=2025-01-07T00%3A00%3A00Z&page=2")
    for n in (1, 2):
        assert _page(client, path, n, params) == _old_page(state, path, n, params, gte, lt)
    world = state.world
    for id_ in (1, 40023, 90025):  # the second is in the filtered pages (already memoised), the others not
        f = akinon.facts_by_id(world, id_)
        want = json_response(RENDER[path](world, f, AS_OF)).body
        for _ in range(2):
            resp = client.get(f"{path}{id_}/", headers=AUTH)
            assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
            assert resp.content == want
    assert client.get(f"{path}90026/", headers=AUTH).status_code == 404


def test_a_page_and_a_detail_share_a_record():
    state, memo, client = _client()
    page = json.loads(_page(client, INVOICES, 1))
    hits = memo.hits
    resp = client.get(f"{INVOICES}2/", headers=AUTH)
    assert memo.hits == hits + 1
    assert resp.json() == page["results"][1]


# --- no stale record ----------------------------------------------------------------------------------
@pytest.mark.parametrize("lines_per_invoice", [None, 3])
def test_moving_as_of_serves_the_new_states(lines_per_invoice):
    state, memo, client = _client(lines_per_invoice)

    def invoice_80006(path: str, page: int = 6):  # (2025-01-09, index 5): 206th record, on page 6 of 40
        body = json.loads(_page(client, path, page))
        [rec] = [r for r in body["results"] if r["id"] == 80006]
        detail = client.get(f"{path}80006/", headers=AUTH).json()
        assert detail == rec
        return body["count"], rec

    count, inv = invoice_80006(INVOICES)
    _, order = invoice_80006(ORDERS)
    assert (count, inv["status"], inv["modified_date"]) == (250, "waiting", "2025-01-09T13:03:52.110199Z")
    assert (order["state"]["name"], order["commands"]) == ("Waiting", [{"name": "cancel_order", "is_active": True}])
    n_lines = 3 if lines_per_invoice == 3 else 2
    assert len(inv["invoiceitem_set"]) == len(order["orderitem_set"]) == n_lines
    memoised = len(memo)

    state.world.config.as_of = LATER  # approved 2025-01-11 04:36, cancelled 2025-01-19 07:03
    count, inv = invoice_80006(INVOICES)
    _, order = invoice_80006(ORDERS)
    assert (count, inv["status"], inv["modified_date"]) == (475, "cancelled", "2025-01-19T07:03:52.110199Z")
    assert inv["order"]["state"]["name"] == "Cancelled"
    assert (order["state"]["name"], order["commands"]) == ("Cancelled", [])
    assert len(memo) > memoised  # the old as_of's records are still there, under their own key
    for path in (INVOICES, ORDERS):
        assert _page(client, path, 6) == _old_page(state, path, 6, f"limit={LIMIT}")

    state.world.config.as_of = AS_OF  # and back: the first states again
    count, inv = invoice_80006(INVOICES)
    assert (count, inv["status"]) == (250, "waiting")


def test_changing_lines_per_invoice_or_seed_is_not_served_stale():
    state, memo, client = _client()
    before = json.loads(client.get(f"{INVOICES}80006/", headers=AUTH).content)
    assert len(before["invoiceitem_set"]) == 2
    state.world.config.lines_per_invoice = 3
    after = json.loads(client.get(f"{INVOICES}80006/", headers=AUTH).content)
    assert len(after["invoiceitem_set"]) == 3
    state.world.config.seed = 8
    other = client.get(f"{INVOICES}80006/", headers=AUTH).content
    world = World(WorldConfig(seed=8, as_of=AS_OF, per_day=dict(PER_DAY), lines_per_invoice=3))
    assert other == json_response(akinon.render(world, akinon.facts_by_id(world, 80006), AS_OF)).body
    assert len(memo) == 3


def test_the_real_clock_is_not_memoised():
    state, memo, client = _client()
    state.world.config.as_of = None
    assert client.get(f"{INVOICES}?limit=5", headers=AUTH).status_code == 200
    assert client.get(f"{INVOICES}1/", headers=AUTH).status_code == 200
    assert len(memo) == 0 and memo.hits == memo.misses == 0


# --- the bound ----------------------------------------------------------------------------------------
def test_the_byte_bound_evicts_the_oldest_records_and_pages_stay_exact():
    state, _, full = _client()
    sizes = [len(dumps(akinon.render(state.world, f, AS_OF))) + BytesMemo.ENTRY_OVERHEAD
             for f in list(akinon.iter_facts(state.world, None, None))[:LIMIT]]
    bound = sum(sizes[-5:])  # exactly the last five records of page 1
    state, memo, client = _client(memo_bytes=bound)
    assert memo.max_bytes == bound
    page1 = _page(client, INVOICES, 1)
    assert page1 == _page(full, INVOICES, 1) == _old_page(state, INVOICES, 1, f"limit={LIMIT}")
    assert memo.size == bound and len(memo) == 5
    keys = memo.keys()
    assert [k[3:] for k in keys] == [(dt.date(2025, 1, 2), i) for i in range(10, 15)]  # ids 10011-10015
    oldest = (akinon.render, keys[0][1], AS_OF, dt.date(2025, 1, 1), 0)
    assert oldest not in memo
    assert _page(client, INVOICES, 1) == page1  # a scan bigger than the bound: it misses, still exact
    assert memo.size <= bound and (memo.hits, memo.misses) == (5, 75)  # only the last five were kept
    off = _client(memo_bytes=0)
    assert _page(off[2], INVOICES, 1) == page1 and len(off[1]) == 0


def test_the_admin_api_reports_the_memo():
    from simulators.server import create_app

    state = SimState(WorldConfig(seed=7, as_of=AS_OF, per_day=dict(PER_DAY)))
    client = TestClient(create_app(state))
    for _ in range(2):
        assert client.get(f"/akinon{INVOICES}?limit={LIMIT}&page=1", headers=AUTH).status_code == 200
    memo = client.get("/_sim/memo/akinon").json()
    assert {k: memo[k] for k in ("memo", "entries", "hits", "misses", "max_bytes")} == {
        "memo": True, "entries": LIMIT, "hits": LIMIT, "misses": LIMIT, "max_bytes": akinon.MEMO_BYTES}
    assert memo["bytes"] > LIMIT * BytesMemo.ENTRY_OVERHEAD
    assert client.get("/_sim/memo/dealpos").json() == {"memo": False}
    assert client.get("/_sim/memo/nobody").status_code == 404
