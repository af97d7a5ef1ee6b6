"""Pagination strategies: small classes with one protocol, and loop/runaway detection.

Protocol (after dlt's paginators): ``first(request)`` prepares the first request; ``next(request, body,
records)`` returns the next request or ``None`` at the end; ``remaining(request, body, records)`` may
return *every* remaining request at once when the first page tells the total, so the runner can fetch
them concurrently. ``declared_total`` is what the API claimed, checked against what was read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit


class PaginationError(RuntimeError):
    """The API's pagination cannot be trusted (a loop, a runaway, a page number it ignores)."""


@dataclass(frozen=True)
class Request:
    path: str
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = "GET"

    def fingerprint(self) -> str:
        # The same page asked by a relative path or by an absolute link is the same page.
        return json.dumps([self.method, "/" + urlsplit(self.path).path.lstrip("/"), sorted((k, str(v)) for k, v in self.params.items()),
                           self.json, sorted(self.headers.items())], default=str, sort_keys=True)

    def with_params(self, **params: Any) -> Request:
        return replace(self, params={**self.params, **params})

    def with_json(self, **fields: Any) -> Request:
        return replace(self, json={**(self.json or {}), **fields})


def dig(body: Any, path: str | None) -> Any:
    """Follow a dotted path into a JSON body ('' or None = the body itself)."""
    if not path:
        return body
    cur = body
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


class Paginator:
    declared_total: int | None = None
    page_size: int | None = None

    def first(self, req: Request) -> Request:
        return req

    def next(self, req: Request, body: Any, records: list) -> Request | None:
        raise NotImplementedError

    def remaining(self, req: Request, body: Any, records: list) -> list[Request] | None:
        return None


class SinglePaginator(Paginator):
    """One response holds the whole result (Shopwave: "list endpoints return full result sets")."""

    def next(self, req: Request, body: Any, records: list) -> Request | None:
        return None


@dataclass
class PageNumberPaginator(Paginator):
    """Page numbers in the query (or the JSON body). Ends on a short/empty page, or at a declared total.

    ``total_pages_path``/``total_items_path`` read the total from the first page (IDH ``total_page``,
    REDEX ``Meta.TotalPage``, DealPOS ``TotalCount``); then the remaining pages are known up front.
    """

    page_param: str = "page"
    size_param: str | None = "limit"
    page_size: int | None = 100
    start: int = 1
    in_body: bool = False
    total_pages_path: str | None = None
    total_items_path: str | None = None
    current_page_path: str | None = None
    parallel: bool = True
    #: records on a full page when no page size is sent: the first page of a multi-page answer
    _full_size: int | None = field(default=None, init=False, repr=False)

    def _set(self, req: Request, page: int) -> Request:
        values = {self.page_param: page}
        if self.size_param and self.page_size:
            values[self.size_param] = self.page_size
        return req.with_json(**values) if self.in_body else req.with_params(**values)

    def _page(self, req: Request) -> int:
        src = req.json if self.in_body else req.params
        return int(src[self.page_param])

    def first(self, req: Request) -> Request:
        return self._set(req, self.start)

    def _total_pages(self, body: Any) -> int | None:
        if self.total_pages_path:
            v = dig(body, self.total_pages_path)
            return int(v) if v is not None else None
        if self.total_items_path and self.page_size:
            v = dig(body, self.total_items_path)
            if v is None:
                return None
            self.declared_total = int(v)
            return max(1, math.ceil(int(v) / self.page_size))
        return None

    def _check_current(self, req: Request, body: Any) -> None:
        if self.current_page_path:
            got = dig(body, self.current_page_path)
            want = self._page(req)
            if got is not None and int(got) != want and not (want == 0 and int(got) == 1):
                raise PaginationError(f"asked for page {want} of {req.path} but the API answered page {got}")

    def next(self, req: Request, body: Any, records: list) -> Request | None:
        self._check_current(req, body)
        page = self._page(req)
        total = self._total_pages(body)
        if not records:
            return None
        if total is not None:
            if page == self.start and total > 1:
                self._full_size = len(records)
            if page < total:
                return self._set(req, page + 1)
            # A declared count can be stale or wrong (a record inserted ahead while we paged pushes the
            # last one onto a page the count does not know; a cached count): after a full last page one
            # more page is asked for, and an empty or short answer ends it.
            full = self.page_size or self._full_size
            return self._set(req, page + 1) if full and len(records) >= full else None
        if self.page_size and len(records) < self.page_size:
            return None
        return self._set(req, page + 1)

    def remaining(self, req: Request, body: Any, records: list) -> list[Request] | None:
        if not self.parallel:
            return None
        self._check_current(req, body)
        total = self._total_pages(body)
        if total is None or not records:
            return None
        page = self._page(req)
        if total > page:
            self._full_size = len(records)
        return [self._set(req, p) for p in range(page + 1, total + 1)]


@dataclass
class NextLinkPaginator(Paginator):
    """Follow a ``next`` link until it is null (Django REST Framework). With ``count`` and a page size
    the remaining page numbers are known after the first page, and can be fetched concurrently; the
    last page's ``next`` must then be null, or the links are followed on from there."""

    next_path: str = "next"
    count_path: str | None = "count"
    page_param: str = "page"
    size_param: str = "limit"
    page_size: int | None = 100
    parallel: bool = True

    def first(self, req: Request) -> Request:
        # Ask for page 1 explicitly, so a `next` link back to page 1 is recognised as a page already read.
        params = {self.page_param: 1, **({self.size_param: self.page_size} if self.page_size else {})}
        return req.with_params(**params)

    def next(self, req: Request, body: Any, records: list) -> Request | None:
        link = dig(body, self.next_path)
        if not link:
            return None
        parts = urlsplit(link)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        return replace(req, path=parts.path if not parts.scheme else link.split("?")[0], params=params)

    def remaining(self, req: Request, body: Any, records: list) -> list[Request] | None:
        if not self.parallel or not self.count_path or not self.page_size or not records:
            return None
        count = dig(body, self.count_path)
        if count is None or not dig(body, self.next_path):
            return None
        self.declared_total = int(count)
        pages = math.ceil(int(count) / self.page_size)
        return [req.with_params(**{self.page_param: p, self.size_param: self.page_size})
                for p in range(2, pages + 1)]


@dataclass
class HasNextPaginator(Paginator):
    """beego's paginator (IDH invoices/payments): ``HasNext`` says whether to go on; the page is ``p=``.

    We set ``p`` (and ``page``) ourselves rather than following ``PageLinkNext`` verbatim, and check that
    ``paginator.Page`` is the page we asked for, so a server that ignores ``p`` is caught, not looped.
    """

    has_next_path: str = "paginator.HasNext"
    page_path: str | None = "paginator.Page"
    page_params: tuple[str, ...] = ("p", "page")
    size_param: str | None = "limit"
    page_size: int | None = 100
    total_items_path: str | None = "data_count"

    def _set(self, req: Request, page: int) -> Request:
        values: dict[str, Any] = {p: page for p in self.page_params}
        if self.size_param and self.page_size:
            values[self.size_param] = self.page_size
        return req.with_params(**values)

    def first(self, req: Request) -> Request:
        return self._set(req, 1)

    def next(self, req: Request, body: Any, records: list) -> Request | None:
        page = int(req.params[self.page_params[0]])
        if self.page_path:
            got = dig(body, self.page_path)
            if got is not None and int(got) != page:
                raise PaginationError(f"asked for page {page} of {req.path} but the API answered page {got}")
        if self.total_items_path and dig(body, self.total_items_path) is not None:
            self.declared_total = int(dig(body, self.total_items_path))
        if not dig(body, self.has_next_path):
            return None
        return self._set(req, page + 1)
