"""Declarative provider and stream specs: what a provider module fills in, and nothing else.

A provider is one :class:`ProviderSpec` (auth, headers, body-level error check, rate limit, connection
form) with its :class:`Stream` list. A stream is a handful of attributes: path, records path, primary
key, paginator, incremental window and how the window is written into the request, an optional detail
fan-out, and its declared schema. The engine (engine/runner.py) runs any of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from invoice_warehouse.engine.http import Auth, BodyCheck
from invoice_warehouse.engine.paginate import Paginator, Request, SinglePaginator, dig
from invoice_warehouse.engine.schema import RECORD_DIGEST, Schema

UTC = dt.timezone.utc


@dataclass(frozen=True)
class ConnInfo:
    """The parts of an Airflow connection a provider needs (read lazily by the hook)."""

    conn_id: str
    host: str
    login: str | None = None
    password: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def secrets(self) -> list[str]:
        out = [self.password] if self.password else []
        out += [str(v) for k, v in self.extra.items()
                if v and any(s in k.lower() for s in ("secret", "token", "key", "password"))]
        return out


@dataclass(frozen=True)
class Window:
    """How a [start, end) window is sent: ``apply(start, end)`` returns request parts
    (``{"params": ...}``, ``{"json": ...}`` or ``{"headers": ...}``). ``max_days`` slices long windows
    (IDH orders: 30 days); ``lookback`` widens every window backwards to catch late changes."""

    apply: Callable[[dt.datetime, dt.datetime], Mapping[str, Mapping[str, Any]]]
    max_days: int | None = None
    lookback: dt.timedelta = dt.timedelta(0)

    def slices(self, start: dt.datetime, end: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        start = start - self.lookback
        step = dt.timedelta(days=self.max_days) if self.max_days else end - start
        cur = start
        while cur < end:
            nxt = min(end, cur + step)
            yield cur, nxt
            cur = nxt


@dataclass(frozen=True)
class Detail:
    """Fetch a detail endpoint per listed record (IDH store/id/:id, REDEX invoices/{InvoiceNumber}).

    ``path`` is formatted with the list record (``"/v1/store/id/{store_id}"``); the record found at
    ``records`` in the detail body is merged over the list record, or put under the key ``into`` when
    the detail must not overwrite list values (IDH: the order list ``total`` differs from the ext
    detail's; both are kept). A stream may name several details (a tuple); they are applied in order."""

    path: str
    records: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    into: str | None = None
    #: a listed field that changes whenever the record does (REDEX ``UpdatedTime``): a listed record
    #: whose value equals the one already landed for its key, in a partition of an earlier window, is
    #: not fetched or landed again (that partition still holds it), so a daily full sweep costs the
    #: list pages plus the details of what changed. A full refresh fetches everything.
    skip_unchanged: str | None = None


@dataclass(frozen=True)
class IdSource:
    """Ids read from a column of another stream of the same provider, already landed for the same
    window (IDH products: the catalogue cannot be listed, so products are fetched by the ids seen in
    orders and returns). ``extract`` turns one column value into ids (e.g. a JSON list); without it the
    value is the id. The stream that uses it must run after ``stream`` for the same window."""

    stream: str
    column: str
    extract: Callable[[Any], Iterable[Any]] | None = None


@dataclass(frozen=True)
class Stream:
    name: str
    path: str
    primary_key: tuple[str, ...]
    schema: Schema
    records: str | Callable[[Any], list] | None = "results"
    paginator: Callable[[], Paginator] = SinglePaginator
    method: str = "GET"
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    window: Window | None = None
    detail: Detail | tuple[Detail, ...] | None = None
    variants: tuple[Mapping[str, Any], ...] = ()
    description: str = ""
    #: fetch ``path`` (with an ``{id}`` placeholder) once per distinct id found in other landed streams,
    #: instead of listing: see :class:`IdSource`.
    ids_from: tuple[IdSource, ...] = ()
    #: record field -> request parameter: stamp the value a request was sent with (query parameter, or
    #: JSON body field) on every record it returned, when the API does not echo it (REDEX rows do not
    #: say which ``TransactionType`` variant listed them). The API's own value wins when present.
    request_fields: Mapping[str, str] = field(default_factory=dict)
    #: a full sweep whose records carry no change marker (REDEX spot transactions, Shopwave invoices and
    #: orders: listed whole every day): each record is landed with a digest of its content as received
    #: (``_record_digest``), and a listed record whose digest equals the one landed for its key in a
    #: partition of an earlier window is not parsed or landed again (that partition still holds it), so a
    #: daily sweep lands what changed. A full refresh lands everything.
    skip_unchanged_records: bool = False

    def __post_init__(self) -> None:
        if self.skip_unchanged_records and self.unchanged_detail_marker:
            raise ValueError(f"stream {self.name}: skip_unchanged_records and Detail.skip_unchanged "
                             "are two ways to say the same; choose one")
        if self.skip_unchanged_records != self.schema.record_digest:
            object.__setattr__(self, "schema", replace(self.schema, record_digest=self.skip_unchanged_records))

    @property
    def unchanged_detail_marker(self) -> str | None:
        """The listed field that tells an unchanged record (``Detail.skip_unchanged``), if any."""
        return next((d.skip_unchanged for d in self.details if d.skip_unchanged), None)

    @property
    def unchanged_marker(self) -> str | None:
        """The landed column that tells an unchanged record: ``Detail.skip_unchanged``'s field, or
        ``_record_digest`` for ``skip_unchanged_records``; None when every record is landed."""
        return RECORD_DIGEST if self.skip_unchanged_records else self.unchanged_detail_marker

    @property
    def details(self) -> tuple[Detail, ...]:
        """The detail fan-outs of a listed record, in order (none, one or several)."""
        if self.detail is None:
            return ()
        return self.detail if isinstance(self.detail, tuple) else (self.detail,)

    def requests_for_ids(self, ids: Iterable[Any]) -> Iterator[Request]:
        """One request per id for an ``ids_from`` stream (``path`` formatted with ``id``)."""
        base = self.base_request()
        for i in ids:
            yield Request(path=base.path.format(id=i), params=dict(base.params),
                          json=dict(base.json) if base.json else None, headers=dict(base.headers),
                          method=base.method)

    def base_request(self) -> Request:
        return Request(path=self.path, params=dict(self.params), json=dict(self.json) if self.json else None,
                       headers=dict(self.headers), method=self.method)

    def requests_for(self, start: dt.datetime, end: dt.datetime) -> Iterator[tuple[str, Request]]:
        """The first request of every slice of the window (x every variant, e.g. IDH payment_type)."""
        base = self.base_request()
        variants = self.variants or ({},)
        slices = self.window.slices(start, end) if self.window else [(start, end)]
        for s, e in slices:
            parts = self.window.apply(s, e) if self.window else {}
            for v in variants:
                req = Request(
                    path=base.path,
                    params={**base.params, **parts.get("params", {}), **v.get("params", {})},
                    json=({**(base.json or {}), **parts.get("json", {}), **v.get("json", {})}
                          if base.json is not None or parts.get("json") or v.get("json") else None),
                    headers={**base.headers, **parts.get("headers", {}), **v.get("headers", {})},
                    method=base.method,
                )
                label = f"{s:%Y-%m-%dT%H:%M}..{e:%Y-%m-%dT%H:%M}" + (f" {v}" if v else "")
                yield label, req

    def tag_records(self, req: Request, records: list) -> list:
        """Add the ``request_fields`` of ``req`` to each record (a no-op for most streams)."""
        if not self.request_fields:
            return records
        tags = {}
        for name, param in self.request_fields.items():
            value = req.params.get(param) if param in req.params else (req.json or {}).get(param)
            if value is not None:
                tags[name] = value
        return [{**tags, **rec} if isinstance(rec, Mapping) else rec for rec in records]

    def extract_records(self, body: Any) -> list:
        if callable(self.records):
            out = self.records(body)
        else:
            out = dig(body, self.records)
        if out is None:
            return []
        if isinstance(out, Mapping):
            # Collections keyed by id (Shopwave) or a single object: flatten to a list.
            return list(out.values()) if all(isinstance(v, Mapping) for v in out.values()) else [out]
        if not isinstance(out, list):
            raise ValueError(f"records at {self.records!r} are a {type(out).__name__}, not a list")
        return out


@dataclass(frozen=True)
class ConnField:
    """A labelled custom field of the Airflow connection form (stored in the connection's extra)."""

    name: str
    label: str
    secret: bool = False
    description: str = ""


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    title: str
    conn_type: str
    auth: Callable[[ConnInfo, Callable[[str], None]], Auth]
    streams: tuple[Stream, ...]
    default_headers: Mapping[str, str] = field(default_factory=dict)
    body_check: BodyCheck | None = None
    rate_limit: tuple[int, float] | None = None
    max_concurrency: int = 4
    test_path: str = "/"
    test_params: Mapping[str, Any] = field(default_factory=dict)
    source_timezone: str = "UTC"
    relabeling: Mapping[str, str] = field(default_factory=dict)
    placeholders: Mapping[str, str] = field(default_factory=dict)
    hidden_fields: tuple[str, ...] = ("schema", "port", "extra")
    extra_fields: tuple[ConnField, ...] = ()
    #: stream -> days re-read before each run's window, for late changes the date filter cannot see
    #: (a payment on an invoice sold last week). Applied by the pipeline to the first day of a run.
    lookback_days: Mapping[str, int] = field(default_factory=dict)
    doc: str = ""

    @property
    def default_conn_id(self) -> str:
        return f"{self.name}_default"

    def stream(self, name: str) -> Stream:
        for s in self.streams:
            if s.name == name:
                return s
        raise KeyError(f"provider {self.name!r} has no stream {name!r}; it has "
                       f"{', '.join(s.name for s in self.streams)}")

    def connection_type_info(self, hook_class: str) -> dict[str, Any]:
        """This provider's entry of get_provider_info()['connection-types'] (labelled form fields)."""
        info: dict[str, Any] = {
            "connection-type": self.conn_type,
            "hook-class-name": hook_class,
            "hook-name": self.title,
            "ui-field-behaviour": {
                "hidden-fields": list(self.hidden_fields),
                "relabeling": dict(self.relabeling),
                "placeholders": dict(self.placeholders),
            },
        }
        if self.extra_fields:
            info["conn-fields"] = {
                f.name: {"label": f.label, "description": f.description,
                         "schema": {"type": ["string", "null"], **({"format": "password"} if f.secret else {})}}
                for f in self.extra_fields
            }
        return info
