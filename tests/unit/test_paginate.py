"""Pagination strategies with hand-built responses: several pages, empty results, loops, runaways."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from invoice_warehouse.engine.paginate import (
    HasNextPaginator,
    NextLinkPaginator,
    PageNumberPaginator,
    PaginationError,
    SinglePaginator,
)
from invoice_warehouse.engine.runner import run_stream
from tests.unit.fakes import T0, T1, FakeClient, spec_with


def _run(tmp_path, spec, stream, client):
    return run_stream(client, spec, stream, start=T0, end=T1, landing=tmp_path, window_label="2025-03-01",
                      run_id="t")


def _ids(manifest) -> list[str]:
    return pq.read_table(manifest["dir"] + "/" + manifest["files"]["data"]).column("id").to_pylist() \
        if "dir" in manifest else []


def _data(tmp_path, manifest):
    part = tmp_path / "fake" / "things" / "window=2025-03-01" / manifest["files"]["data"]
    return pq.read_table(part).to_pylist()


def drf_pages(n_records: int, size: int):
    rows = [{"id": i, "amount": f"{i}.50"} for i in range(1, n_records + 1)]

    def respond(path, params):
        page = int(params.get("page", 1))
        chunk = rows[(page - 1) * size: page * size]
        last = page * size >= n_records
        return {"count": n_records, "previous": None, "results": chunk,
                "next": None if last else f"http://api.test/things/?limit={size}&page={page + 1}"}
    return respond


def test_next_links_followed_to_the_end_sequentially(tmp_path):
    spec, stream = spec_with(lambda: NextLinkPaginator(page_size=2, parallel=False))
    client = FakeClient(drf_pages(5, 2))
    m = _run(tmp_path, spec, stream, client)
    assert (m["records"], m["pages"], m["quarantined"]) == (5, 3, 0)
    assert [str(c[1]["page"]) for c in client.calls] == ["1", "2", "3"]
    rows = _data(tmp_path, m)
    assert [r["id"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert str(sum(r["amount"] for r in rows)) == "17.50"


def test_next_links_with_count_fetch_remaining_pages_concurrently(tmp_path):
    spec, stream = spec_with(lambda: NextLinkPaginator(page_size=2))
    client = FakeClient(drf_pages(7, 2))
    m = _run(tmp_path, spec, stream, client)
    assert (m["records"], m["pages"], m["declared_total"]) == (7, 4, 7)
    assert sorted(r["id"] for r in _data(tmp_path, m)) == ["1", "2", "3", "4", "5", "6", "7"]


def test_empty_result_is_one_request_and_an_empty_partition(tmp_path):
    spec, stream = spec_with(lambda: NextLinkPaginator(page_size=2))
    client = FakeClient(lambda path, params: {"count": 0, "next": None, "previous": None, "results": []})
    m = _run(tmp_path, spec, stream, client)
    assert (m["records"], m["pages"], len(client.calls)) == (0, 1, 1)
    assert _data(tmp_path, m) == []


def test_next_link_pointing_back_is_a_loop_error(tmp_path):
    spec, stream = spec_with(lambda: NextLinkPaginator(page_size=2, parallel=False))

    def respond(path, params):
        page = int(params.get("page", 1))
        nxt = 2 if page == 1 else 1  # page 2 says the next page is page 1 again
        return {"count": 4, "results": [{"id": page * 10 + 1}, {"id": page * 10 + 2}],
                "next": f"http://api.test/things/?limit=2&page={nxt}"}

    with pytest.raises(PaginationError, match=r"pagination loop: http://api.test/things/ with "
                                              r"\{'limit': '2', 'page': '1'\} was already read"):
        _run(tmp_path, spec, stream, FakeClient(respond))
    # Nothing was committed for the window.
    assert not (tmp_path / "fake" / "things" / "window=2025-03-01" / "_manifest.json").exists()


def test_page_number_with_short_last_page(tmp_path):
    spec, stream = spec_with(lambda: PageNumberPaginator(page_param="PageNumber", size_param="PageSize",
                                                         page_size=3), records="")
    rows = [{"id": i} for i in range(1, 8)]
    client = FakeClient(lambda path, p: rows[(p["PageNumber"] - 1) * 3: p["PageNumber"] * 3])
    m = _run(tmp_path, spec, stream, client)
    assert (m["records"], m["pages"]) == (7, 3)
    assert [c[1]["PageNumber"] for c in client.calls] == [1, 2, 3]


def test_page_number_ending_on_an_empty_page(tmp_path):
    spec, stream = spec_with(lambda: PageNumberPaginator(page_size=3), records="")
    rows = [{"id": i} for i in range(1, 7)]
    client = FakeClient(lambda path, p: rows[(p["page"] - 1) * 3: p["page"] * 3])
    m = _run(tmp_path, spec, stream, client)
    assert (m["records"], m["pages"]) == (6, 3)


def test_page_number_ignoring_the_page_parameter_is_a_runaway_error(tmp_path):
    spec, stream = spec_with(lambda: PageNumberPaginator(page_size=2), records="")
    client = FakeClient(lambda path, p: [{"id": 1}, {"id": 2}])  # every page is page 1
    with pytest.raises(PaginationError, match="returned exactly the records of the previous page"):
        _run(tmp_path, spec, stream, client)
    assert len(client.calls) == 2


def test_total_pages_known_up_front(tmp_path):
    spec, stream = spec_with(lambda: PageNumberPaginator(page_size=2, total_pages_path="paginator.total_page",
                                                         current_page_path="paginator.current_page"))
    rows = [{"id": i} for i in range(1, 6)]
    client = FakeClient(lambda path, p: {"success": True, "paginator": {"current_page": p["page"], "total_page": 3},
                                         "results": rows[(p["page"] - 1) * 2: p["page"] * 2]})
    m = _run(tmp_path, spec, stream, client)
    assert (m["records"], m["pages"]) == (5, 3)


def test_total_that_lies_high_stops_on_the_empty_page(tmp_path):
    spec, stream = spec_with(lambda: PageNumberPaginator(page_size=2, total_pages_path="meta.total",
                                                         parallel=False))
    rows = [{"id": i} for i in range(1, 4)]
    client = FakeClient(lambda path, p: {"meta": {"total": 50}, "results": rows[(p["page"] - 1) * 2: p["page"] * 2]})
    m = _run(tmp_path, spec, stream, client)
    assert (m["records"], m["pages"]) == (3, 3)  # page 3 was empty: the end, whatever the total says


def test_api_answering_another_page_than_asked_is_an_error(tmp_path):
    spec, stream = spec_with(lambda: PageNumberPaginator(page_size=2, total_pages_path="p.total",
                                                         current_page_path="p.current", parallel=False))
    client = FakeClient(lambda path, p: {"p": {"total": 3, "current": 1}, "results": [{"id": p["page"]}]})
    with pytest.raises(PaginationError, match="asked for page 2 of /things/ but the API answered page 1"):
        _run(tmp_path, spec, stream, client)


def test_has_next_uses_p_and_stops_when_false(tmp_path):
    spec, stream = spec_with(lambda: HasNextPaginator(page_size=2))

    def respond(path, p):
        page = p["p"]
        assert p["page"] == page
        return {"data_count": 5, "success": True, "paginator": {"HasNext": page < 3, "Page": page},
                "results": [{"id": i} for i in range(page * 2 - 1, min(page * 2, 5) + 1)]}

    m = _run(tmp_path, spec, stream, FakeClient(respond))
    assert (m["records"], m["pages"], m["declared_total"]) == (5, 3, 5)


def test_single_response(tmp_path):
    spec, stream = spec_with(SinglePaginator, records="things")
    client = FakeClient(lambda path, p: {"things": {"7": {"id": 7}, "9": {"id": 9}}})
    m = _run(tmp_path, spec, stream, client)
    assert (m["records"], m["pages"]) == (2, 1)
    assert [r["id"] for r in _data(tmp_path, m)] == ["7", "9"]


def test_bad_records_are_quarantined_with_reasons_and_the_rest_lands(tmp_path):
    spec, stream = spec_with(SinglePaginator, records="")
    client = FakeClient(lambda path, p: [{"id": 1, "amount": "1.00"}, {"amount": "2.00"},
                                         {"id": 3, "amount": "abc"}, {"id": 4, "amount": "1.005"}])
    m = _run(tmp_path, spec, stream, client)
    assert (m["records"], m["quarantined"]) == (1, 3)
    q = pq.read_table(tmp_path / "fake" / "things" / "window=2025-03-01" / m["files"]["quarantine"]).to_pylist()
    assert [r["reason"] for r in q] == [
        "required field 'id' is missing",
        "field 'amount': 'abc' is not a number",
        "field 'amount': 1.005 has more than 2 decimal places",
    ]
    assert q[0]["raw"] == '{"amount":"2.00"}'


def test_the_details_of_pages_fetched_ahead_are_fetched_side_by_side(tmp_path):
    """A page fetched ahead has its records' details fetched on its own thread: the detail of a record on
    page 3 is asked for while the detail of a record on page 2 is still outstanding (here it waits for
    it). Fetched page after page by the thread that lands them, the detail on page 2 would wait for ever
    (up to the test's 5 s) and the stream would fail."""
    import threading

    from invoice_warehouse.engine.schema import Field
    from invoice_warehouse.engine.spec import Detail

    spec, stream = spec_with(lambda: NextLinkPaginator(page_size=2), extra_fields=(Field("note"),),
                             detail=Detail(path="/things/{id}"))
    page_3_asked = threading.Event()
    pages = drf_pages(6, 2)

    def respond(path, params):
        if path == "/things/":
            return pages(path, params)
        rid = int(path.rsplit("/", 1)[1])
        if rid == 5:  # on page 3
            page_3_asked.set()
        if rid == 3 and not page_3_asked.wait(5):  # on page 2
            raise TimeoutError("the detail of record 5 (page 3) was not asked for in time")
        return {"note": f"detail {rid}"}

    m = _run(tmp_path, spec, stream, FakeClient(respond))
    assert (m["records"], m["pages"], m["quarantined"]) == (6, 3, 0)
    assert sorted((r["id"], r["note"]) for r in _data(tmp_path, m)) == [
        (str(i), f"detail {i}") for i in range(1, 7)]


KINDS = ({"params": {"kind": "a"}}, {"params": {"kind": "b"}})


def test_the_variants_of_a_window_are_read_side_by_side(tmp_path):
    """A stream's variants (REDEX payables and receivables, IDH's payment types) are separate lists of
    the same window: the first page of one is asked for while the first page of the other is still
    outstanding (here it waits for it), and both land in the one partition, tagged by their variant."""
    import threading

    from invoice_warehouse.engine.schema import Field

    spec, stream = spec_with(lambda: NextLinkPaginator(page_size=2), extra_fields=(Field("kind"),),
                             variants=KINDS, request_fields={"kind": "kind"})
    b_asked = threading.Event()
    lists = {"a": drf_pages(3, 2), "b": drf_pages(3, 2)}

    def respond(path, params):
        kind = params["kind"]
        if kind == "b":
            b_asked.set()
        elif not b_asked.wait(5):
            raise TimeoutError("the first page of variant b was not asked for in time")
        body = lists[kind](path, params)
        return {**body, "results": [{**r, "id": f"{kind}{r['id']}"} for r in body["results"]]}

    m = _run(tmp_path, spec, stream, FakeClient(respond))
    assert (m["records"], m["pages"], m["quarantined"]) == (6, 4, 0)
    assert sorted((r["id"], r["kind"]) for r in _data(tmp_path, m)) == [
        ("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b"), ("b2", "b"), ("b3", "b")]


def test_a_failed_variant_stops_the_other_at_its_next_page(tmp_path):
    """When one variant of the window fails, the stream fails with that error, and the variant read
    beside it stops at its next page rather than reading its whole list first."""
    import time

    spec, stream = spec_with(lambda: NextLinkPaginator(page_size=2), variants=KINDS)
    lists = {"a": drf_pages(6, 2), "b": drf_pages(60, 2)}
    b_pages: list[int] = []

    def respond(path, params):
        kind, page = params["kind"], int(params.get("page", 1))
        if kind == "a" and page == 2:
            raise RuntimeError("page 2 of variant a failed")
        if kind == "b":
            b_pages.append(page)
            time.sleep(0.02)
        body = lists[kind](path, params)
        return {**body, "results": [{**r, "id": f"{kind}{r['id']}"} for r in body["results"]]}

    with pytest.raises(RuntimeError, match="page 2 of variant a failed"):
        _run(tmp_path, spec, stream, FakeClient(respond))
    assert 1 <= len(b_pages) < 10, b_pages  # of its 30 pages
