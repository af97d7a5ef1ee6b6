"""The REDEX simulator's state-keyed record memo serves exactly the bytes a fresh rendering gives.

Invoice rows, invoice details and spot-exchange transactions are memoised as JSON bytes under a
``RecordKey`` that names the record's *state* (what its rendering reads of ``as_of``), not ``as_of``: after
the daily move of the clock only the records whose state changed (and the new ones) are rendered again.
Full sweeps are compared byte for byte with the un-memoised path (each record rendered, then the whole
envelope dumped, as ``paged`` did before the memo), cold, warm and after a one-day move of ``as_of``,
with and without ``lines_per_invoice``, with the ``drift`` and ``duplicates`` faults; the records that
change state across the move are named and served with their new state; the byte bound evicts least
recently used first; the admin API reports the memo.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from simulators import redex as R
from simulators.jsonbody import MEMO_BYTES, BytesMemo, RecordKey, array, dumps, exact_number, splice
from simulators.server import SimState, create_app
from simulators.world import World, WorldConfig

UTC = dt.timezone.utc
INVOICES = "/public/v2/invoices"
TRANSACTIONS = "/public/v2/spot-exchange/transactions"
#: A small exact world: 6 invoices and 2 open orders a day from 2025-01-01; the clock at midnight of
#: 2025-01-21 (120 invoices exist), then the daily run one day later (126).
AS_OF = dt.datetime(2025, 1, 21, tzinfo=UTC)
NEXT = AS_OF + dt.timedelta(days=1)
PER_DAY = {"redex": 6, "redex:open-orders": 2}
SIZE = 40
#: (path, lines_per_invoice) -> (records at AS_OF, records at NEXT, records new or changed by the move)
EXPECTED = {(INVOICES, None): (120, 126, 6 + 3), (INVOICES, 3): (120, 126, 6 + 3),
            (TRANSACTIONS, None): (349, 369, 20 + 6), (TRANSACTIONS, 3): (400, 420, 20 + 7)}


def _connect(app, prefix: str = "") -> TestClient:
    """A client of ``app`` holding an access token (the api-key grant)."""
    client = TestClient(app)
    c = R.CREDENTIALS
    grant = client.post(f"{prefix}/public/v2/connect/token", json={"ApiKey": c["api_key"], "GrantType": "api_key",
                                                                    "ClientId": c["client_id"],
                                                                    "ClientSecret": c["client_secret"]})
    client.headers["Authorization"] = f"Bearer {grant.json()['Data']['AccessToken']}"
    return client


def _client(lines_per_invoice: int | None = None, memo_bytes: int | None = None, **faults):
    state = SimState(WorldConfig(seed=7, as_of=AS_OF, per_day=dict(PER_DAY), lines_per_invoice=lines_per_invoice))
    state.faults["redex"].update(**faults)
    app = R.make_app(state, memo_bytes=memo_bytes)
    return state, app.state.record_memo, _connect(app)


def _get(client: TestClient, url: str) -> bytes:
    resp = client.get(url)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    assert int(resp.headers["content-length"]) == len(resp.content)
    return resp.content


def _sweep(client: TestClient, path: str, params: str = "") -> list[bytes]:
    """Every page of a list, as a client sweeps it."""
    pages: list[bytes] = []
    while True:
        pages.append(_get(client, f"{path}?ItemsPerPage={SIZE}&CurrentPage={len(pages) + 1}{params}"))
        if len(pages) >= json.loads(pages[-1])["Meta"]["TotalPage"]:
            return pages


def _envelope(data, meta=None) -> bytes:
    """The seed's envelope as ``envelope`` dumped it before the memo: the whole object at once."""
    return R._dumps({"Data": data, "Meta": meta, "Errors": None, "StatusCode": 200, "Message": "Success"})


def _old_sweep(state: SimState, path: str) -> list[bytes]:
    """Every page of the unfiltered list as ``paged`` built it before the memo: the records rendered, then
    the whole envelope dumped (default order: CreatedDate / CreatedTime descending)."""
    world, faults = state.world, state.faults["redex"]
    if path == INVOICES:
        recs = [R.render(f, world.as_of)
                for f in sorted(R.iter_invoices(world), key=lambda f: (f.created, f.number), reverse=True)]
    else:
        recs = [R.transaction_record(world, kind, key) for _t, kind, key in sorted(R.iter_transactions(world),
                                                                                  reverse=True)]
    total, n_pages = len(recs), math.ceil(len(recs) / SIZE)
    pages = []
    for page in range(1, n_pages + 1):
        lo = (page - 1) * SIZE - (1 if faults.drift and page > 1 else 0)
        chunk = recs[lo: lo + SIZE]
        if faults.duplicates and page > 1 and chunk and lo >= 1:
            chunk = [recs[lo - 1], *chunk]
        pages.append(_envelope(chunk, {"CurrentPage": page, "TotalPage": n_pages, "ItemsPerPage": SIZE,
                                       "TotalItems": total}))
    return pages


def _records(pages: list[bytes]) -> list[dict]:
    return [r for p in pages for r in json.loads(p, parse_float=Decimal)["Data"]]


# --- the serialisation helpers on their own -----------------------------------------------------------
def test_splice_and_array_are_dumps_of_the_whole_object():
    recs = [{"Total": Decimal("1240.29"), "Quantity": Decimal("3.000000"), "Name": "Kırmızı"},
            {"Total": Decimal("1.0"), "Nested": [Decimal("1.00"), None]}]
    opts = {"decimal": exact_number, "ensure_ascii": True, "allow_nan": True}
    body = {"Data": recs, "Meta": {"CurrentPage": 1, "Ünï": "ç"}, "Errors": None, "StatusCode": 200}
    want = dumps(body, **opts)
    assert splice({**body, "Data": array([dumps(r, **opts) for r in recs])}, **opts) == want
    assert splice(body, **opts) == want  # nothing pre-encoded: dumps itself
    assert b'"Quantity":3.000000' in want and b'"Nested":[1.00,null]' in want and b"\\u0131" in want
    plain = {"İptal": {"1": {"a": "ç"}, "2": {}}, "api": {"x": [1, 2.5]}}
    assert splice({"İptal": splice({k: dumps(v) for k, v in plain["İptal"].items()}), "api": plain["api"]}) \
        == dumps(plain) == '{"İptal":{"1":{"a":"ç"},"2":{}},"api":{"x":[1,2.5]}}'.encode()
    assert splice({}) == b"{}" and array([]) == b"[]" and splice({"Data": array([])}) == b'{"Data":[]}'


# --- byte identity across the daily move ---------------------------------------------------------------
def _states(pages: list[bytes]) -> set[tuple[object, str]]:
    """The (record, state) pairs a sweep served: a record's id with its whole content."""
    return {(r.get("InvoiceNumber") or r["OrderId"], json.dumps(r, sort_keys=True, default=str))
            for r in _records(pages)}


@pytest.mark.parametrize("path", [INVOICES, TRANSACTIONS])
@pytest.mark.parametrize("lines_per_invoice", [None, 3])
@pytest.mark.parametrize("fault", [None, "drift", "duplicates"])
def test_sweeps_are_the_unmemoised_bytes_cold_warm_and_after_a_day(path, lines_per_invoice, fault):
    state, memo, client = _client(lines_per_invoice, **({fault: True} if fault else {}))
    n_before, n_after, renewed = EXPECTED[path, lines_per_invoice]
    cold = _sweep(client, path)
    assert cold == _old_sweep(state, path)
    assert json.loads(cold[0])["Meta"]["TotalItems"] == n_before
    seen = _states(cold)
    # every record served was rendered once (with drift, pages start one early: when the records fill
    # the last page exactly, the oldest one is never served)
    assert memo.misses == len(memo) == len(seen) == n_before - (fault == "drift" and n_before % SIZE == 0)

    warm = _sweep(client, path)
    assert warm == cold
    assert (len(memo), memo.misses, memo.hits) == (len(seen), len(seen), 2 * len(_records(cold)) - len(seen))

    state.world.config.as_of = NEXT  # the daily run
    daily = _sweep(client, path)
    assert daily == _old_sweep(state, path)
    assert json.loads(daily[0])["Meta"]["TotalItems"] == n_after
    # rendered again: only the records served in a new state, and the new records
    assert memo.misses == len(memo) == len(seen | _states(daily)) == n_before + renewed
    assert _sweep(client, path) == daily and memo.misses == n_before + renewed

    state.world.config.as_of = AS_OF  # and back: yesterday's bytes, all from the memo
    assert _sweep(client, path) == cold and memo.misses == n_before + renewed


def test_the_records_that_change_state_are_served_with_their_new_state():
    state, memo, client = _client()

    def by_number(pages):
        return {r["InvoiceNumber"]: r for r in _records(pages)}

    def by_order(pages):
        return {r["OrderId"]: r for r in _records(pages)}

    rows, txs = by_number(_sweep(client, INVOICES)), by_order(_sweep(client, TRANSACTIONS))
    # current (2024-10) shape: Unpaid, lapses to Expired at 2025-01-21 00:45:20.999999
    current = rows["INV-REAR-2025-01-17-00004"]
    assert (current["Status"], current["UpdatedTime"], current["PaidDate"]) == (
        {"Value": "Unpaid", "Description": "Unpaid"}, "2025-01-17T13:37:20.106", None)
    # legacy (2024-03) shape: in payment follow-up, paid at 2025-01-21 20:37:55.497129
    legacy = rows["INV-REAR-2025-01-11-00006"]
    assert (legacy["Status"], legacy["StatusDescription"], legacy["UpdatedTime"], legacy["PaidDate"]) == (
        "PaymentFollowUp", "Payment Follow Up", "2025-01-20T00:59:59.99", None)
    # their trades (order ids: day index * 10^7 + invoice index * 100 + item), and an open order
    assert [txs[o]["Status"]["Value"] for o in (160_000_301, 160_000_304, 100_000_501)] == ["Pending"] * 3
    assert (txs[9_000_190_001]["Status"]["Value"], txs[9_000_190_001]["FinishedTime"]) == ("Requested", None)
    row_key = RecordKey(R.invoice_row, (7, None), (dt.date(2025, 1, 17), 3),
                        ("Unpaid", dt.datetime(2025, 1, 17, 13, 37, 20, 106302, tzinfo=UTC), None))
    assert row_key in memo

    state.world.config.as_of = NEXT
    rows, txs = by_number(_sweep(client, INVOICES)), by_order(_sweep(client, TRANSACTIONS))
    current, legacy = rows["INV-REAR-2025-01-17-00004"], rows["INV-REAR-2025-01-11-00006"]
    assert (current["Status"], current["UpdatedTime"], current["PaidDate"]) == (
        {"Value": "Expired", "Description": "Expired"}, "2025-01-21T00:45:20.999", None)
    assert (legacy["Status"], legacy["StatusDescription"], legacy["UpdatedTime"], legacy["PaidDate"]) == (
        "Paid", "Paid", "2025-01-21T20:37:55.49", "2025-01-21T20:37:55.4971293")
    assert [(txs[o]["Status"]["Value"], txs[o]["FinishedTime"]) for o in (160_000_301, 160_000_304)] == [
        ("Voided", "2025-01-21T00:45:20.9999990Z")] * 2
    assert (txs[100_000_501]["Status"]["Value"], txs[100_000_501]["FinishedTime"]) == (
        "Settled", "2025-01-21T20:37:55.4971293Z")
    assert (txs[9_000_190_001]["Status"]["Value"], txs[9_000_190_001]["FinishedTime"]) == (
        "Cancelled", "2025-01-21T06:08:06.0547212Z")
    assert row_key in memo and row_key._replace(
        state=("Expired", dt.datetime(2025, 1, 21, 0, 45, 20, 999999, tzinfo=UTC), None)) in memo
    # an invoice whose state did not change kept its key, so its bytes were not rendered again
    unchanged = rows["INV-REAP-2025-01-02-00001"]
    paid_at = dt.datetime(2025, 1, 7, 12, 23, 12, 503913, tzinfo=UTC)
    assert (unchanged["Status"]["Value"], unchanged["PaidDate"]) == ("Paid", "2025-01-07T12:23:12.5039134Z")
    assert RecordKey(R.invoice_row, (7, None), (dt.date(2025, 1, 2), 0), ("Paid", paid_at, paid_at)) in memo


def test_a_trade_is_invoiced_while_its_status_stays_pending():
    """Trade 190000001 matched at 12:08:05; its invoice INV-REAP-2025-01-20-00001 is created at 12:33:31 and
    turns Unpaid at 12:42:35. The trade's status is Pending on both sides of 12:33:31, but its InvoiceId is
    not: the key's state carries whether the invoice exists."""
    state, memo, client = _client()
    seen = []
    for hhmm in ("1230", "1235", "1245"):
        state.world.config.as_of = dt.datetime(2025, 1, 20, int(hhmm[:2]), int(hhmm[2:]), tzinfo=UTC)
        txs, rows = _sweep(client, TRANSACTIONS), _sweep(client, INVOICES)
        assert txs == _old_sweep(state, TRANSACTIONS) and rows == _old_sweep(state, INVOICES)
        [trade] = [r for r in _records(txs) if r["OrderId"] == 190_000_001]
        row = [r for r in _records(rows) if r["InvoiceNumber"] == "INV-REAP-2025-01-20-00001"]
        seen.append((trade["Status"]["Value"], trade["InvoiceId"], trade["MatchedTime"],
                     [(r["Status"]["Value"], r["UpdatedTime"]) for r in row]))
    matched, number = "2025-01-20T12:08:05.8506492Z", "INV-REAP-2025-01-20-00001"
    assert seen == [("Pending", None, matched, []),
                    ("Pending", number, matched, [("Sending", "2025-01-20T12:33:31.645")]),
                    ("Pending", number, matched, [("Unpaid", "2025-01-20T12:42:35.645")])]


#: number -> (row shape, items, status at AS_OF, status at NEXT)
DETAILS = {"INV-REAR-2025-01-17-00004": ("current", 4, "Unpaid", "Expired"),
           "INV-REAR-2025-01-11-00006": ("legacy", 1, "PaymentFollowUp", "Paid")}


@pytest.mark.parametrize("number", sorted(DETAILS))
def test_the_detail_is_the_unmemoised_bytes_before_and_after_the_move(number):
    state, memo, client = _client()
    shape, n_items, *statuses = DETAILS[number]
    for as_of, status in zip((AS_OF, NEXT), statuses, strict=True):
        state.world.config.as_of = as_of
        _sweep(client, INVOICES)  # the row is memoised: the detail (row + parties + items) is another record
        want = _envelope(R.render_detail(R.facts_by_number(state.world, number), as_of))
        misses, hits = memo.misses, memo.hits
        assert _get(client, f"{INVOICES}/{number}") == want  # rendered (a new state)
        assert _get(client, f"{INVOICES}/{number}") == want  # from the memo
        assert (memo.misses, memo.hits) == (misses + 1, hits + 1)
        data = json.loads(want)["Data"]
        assert data["Status"] == (status if shape == "legacy" else {"Value": status, "Description": status})
        assert len(data["MainInvoice"]["Items"]) == n_items
    assert client.get(f"{INVOICES}/INV-REAR-2025-01-22-00001").json()["StatusCode"] == 404  # not yet
    assert client.get(f"{INVOICES}/INV-XXXX-2025-01-02-00001").json()["StatusCode"] == 403


FILTERS = {
    INVOICES: ["&Statuses=Paid&Statuses=Unpaid&Statuses=Expired",
               "&TransactionType=AccountsReceivable&OrderBy=InvoiceNumber&IsDecending=true",
               "&Search=REAR-2025-01-1", "&Types=Trading&OrderBy=IssuedDate"],
    TRANSACTIONS: ["&MarketIds=1&MarketIds=3", "&Statuses=Settled&Statuses=Voided&Side=Sell",
                   "&OrderBy=CreatedTime"],
}


@pytest.mark.parametrize("path", [INVOICES, TRANSACTIONS])
def test_filtered_sweeps_are_the_bytes_without_the_memo(path):
    state, memo, client = _client(3)
    off_state, off, plain = _client(3, memo_bytes=0)
    for as_of in (AS_OF, NEXT):
        state.world.config.as_of = off_state.world.config.as_of = as_of
        for params in FILTERS[path]:
            assert _sweep(client, path, params) == _sweep(plain, path, params)
    assert len(off) == 0 and memo.misses > 0
    paid = json.loads(_get(client, f"{INVOICES}?Statuses=Paid&ItemsPerPage=100"))["Data"]  # as of NEXT
    assert {r["Status"] if isinstance(r["Status"], str) else r["Status"]["Value"] for r in paid} == {"Paid"}
    assert len(paid) == 55


def test_changing_the_seed_or_lines_per_invoice_is_not_served_stale():
    state, memo, client = _client()
    number = "INV-REAR-2025-01-17-00004"
    before = json.loads(_get(client, f"{INVOICES}/{number}"))["Data"]
    assert len(before["MainInvoice"]["Items"]) == 4
    state.world.config.lines_per_invoice = 3
    after = json.loads(_get(client, f"{INVOICES}/{number}"))["Data"]
    assert len(after["MainInvoice"]["Items"]) == 3
    state.world.config.seed = 8  # the same number names another invoice
    other = R.facts(World(WorldConfig(seed=8, lines_per_invoice=3)), dt.date(2025, 1, 17), 3)
    got = _get(client, f"{INVOICES}/{number}")
    assert got == _envelope(R.render_detail(other, AS_OF)) and json.loads(got)["Data"] != after
    assert len(memo) == 3


def test_the_real_clock_is_not_memoised():
    state, memo, client = _client()
    state.world.config.as_of = None
    assert client.get(f"{INVOICES}?ItemsPerPage=5").json()["StatusCode"] == 200
    assert client.get(f"{TRANSACTIONS}?ItemsPerPage=5").json()["StatusCode"] == 200
    assert client.get(f"{INVOICES}/INV-REAR-2025-01-17-00004").json()["StatusCode"] == 200
    assert len(memo) == 0 and memo.hits == memo.misses == 0


def test_the_byte_bound_evicts_the_oldest_records_and_pages_stay_exact():
    state, _, full = _client()
    newest = sorted(R.iter_invoices(state.world), key=lambda f: (f.created, f.number), reverse=True)[:SIZE]
    sizes = [len(R._dumps(R.render(f, AS_OF))) + BytesMemo.ENTRY_OVERHEAD for f in newest]
    bound = sum(sizes[-5:])  # exactly the last five records of page 1
    state, memo, client = _client(memo_bytes=bound)
    assert memo.max_bytes == bound
    url = f"{INVOICES}?ItemsPerPage={SIZE}&CurrentPage=1"
    page1 = _get(client, url)
    assert page1 == _get(full, url) == _old_sweep(state, INVOICES)[0]
    assert memo.size == bound and len(memo) == 5
    assert [k.ident for k in memo.keys()] == [(f.day, f.index) for f in newest[-5:]]
    assert _get(client, url) == page1  # a scan bigger than the bound: it misses, still exact
    assert memo.size <= bound and (memo.hits, memo.misses) == (5, 75)  # only the last five were kept
    _, off, plain = _client(memo_bytes=0)
    assert _get(plain, url) == page1 and len(off) == 0


def test_the_admin_api_reports_the_memo():
    state = SimState(WorldConfig(seed=7, as_of=AS_OF, per_day=dict(PER_DAY)))
    client = _connect(create_app(state), "/redex")
    for _ in range(2):
        assert client.get(f"/redex{INVOICES}?ItemsPerPage={SIZE}").status_code == 200
    memo = client.get("/_sim/memo/redex").json()
    assert {k: memo[k] for k in ("memo", "entries", "hits", "misses", "max_bytes")} == {
        "memo": True, "entries": SIZE, "hits": SIZE, "misses": SIZE, "max_bytes": MEMO_BYTES}
    assert memo["bytes"] > SIZE * BytesMemo.ENTRY_OVERHEAD


def test_concurrent_sweeps_while_the_clock_moves_are_each_one_consistent_answer():
    """Pages served while another thread moves ``as_of`` back and forth are each exactly the page of one
    of the two days (told apart by TotalItems): a request never mixes two clocks, never serves a stale state."""
    state = SimState(WorldConfig(seed=7, as_of=AS_OF, per_day=dict(PER_DAY), lines_per_invoice=3))
    app = R.make_app(state)
    want: dict[tuple[str, int], dict[int, bytes]] = {}
    for as_of in (AS_OF, NEXT):
        state.world.config.as_of = as_of
        for path in (INVOICES, TRANSACTIONS):
            for n, page in enumerate(_old_sweep(state, path), 1):
                want.setdefault((path, n), {})[json.loads(page)["Meta"]["TotalItems"]] = page
    errors: list[str] = []
    totals: set[int] = set()
    stop = threading.Event()

    def read(path: str) -> None:
        client = _connect(app)
        try:
            for _ in range(6):
                for n in range(1, 4):  # pages that exist on both days
                    body = _get(client, f"{path}?ItemsPerPage={SIZE}&CurrentPage={n}")
                    total = json.loads(body)["Meta"]["TotalItems"]
                    totals.add(total)
                    if want[path, n].get(total) != body:
                        errors.append(f"{path} page {n} ({total})")
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(repr(exc))

    def move() -> None:
        while not stop.is_set():
            for as_of in (NEXT, AS_OF):
                state.world.config.as_of = as_of
                stop.wait(0.002)

    readers = [threading.Thread(target=read, args=(p,)) for p in (INVOICES, TRANSACTIONS, INVOICES)]
    mover = threading.Thread(target=move)
    mover.start()
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    stop.set()
    mover.join()
    assert errors == []
    assert totals >= {120, 126} and app.state.record_memo.hits > 0  # both days were served
