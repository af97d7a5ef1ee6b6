"""A scripted stand-in for HttpClient: hand-built responses keyed by (path, params)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from invoice_warehouse.engine.http import Stats
from invoice_warehouse.engine.paginate import Paginator
from invoice_warehouse.engine.schema import Field, Schema
from invoice_warehouse.engine.spec import ProviderSpec, Stream

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 3, 1, tzinfo=UTC)
T1 = dt.datetime(2025, 3, 2, tzinfo=UTC)


class FakeClient:
    def __init__(self, respond: Callable[[str, dict], Any]):
        self.respond = respond
        self.calls: list[tuple[str, dict]] = []
        self.stats = Stats()

    def request_json(self, method, path, *, params=None, json_body=None, headers=None):
        params = dict(params or {})
        self.calls.append((path, params))
        self.stats.count(200)
        return self.respond(path, params), None


def spec_with(paginator: Callable[[], Paginator], records: str = "results",
              extra_fields: tuple[Field, ...] = (), **stream: Any) -> tuple[ProviderSpec, Stream]:
    """A provider of one stream ``things`` (id, amount and ``extra_fields``); ``stream``: more Stream
    attributes (detail, variants, request_fields...)."""
    stream = Stream(name="things", path="/things/", primary_key=("id",), records=records,
                    paginator=paginator,
                    schema=Schema.of(Field("id", required=True), Field("amount", "decimal(18,2)"),
                                     *extra_fields),
                    **stream)
    spec = ProviderSpec(name="fake", title="Fake", conn_type="fake", auth=lambda c, s: None,
                        streams=(stream,), max_concurrency=2)
    return spec, stream
