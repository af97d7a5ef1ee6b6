"""A scripted HTTP API for the bad-input catalogue: exact bytes, statuses and broken connections.

Routes map a path and a page number (the ``page`` query parameter, default 1) to a list of responses
served in order (the last one repeats), so "bad once, then fine" and "bad for ever" are both one line.
Unlike tests/unit/fakes.py it goes through a real socket, so the engine's HTTP client meets the bytes
exactly as sent: a truncated body, non-UTF-8 bytes, an HTML page with a 200.
"""

from __future__ import annotations

import http.server
import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Resp:
    body: Any = None  # bytes as is; anything else as JSON
    status: int = 200
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    truncate: bool = False  # promise more bytes than sent, then hang up

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


def drf(results: Any, next_page: int | None = None, count: int | None = None, **extra: Any) -> dict:
    """A Django REST Framework page (Akinon's shape)."""
    return {"count": count if count is not None else (len(results) if isinstance(results, list) else 0),
            "next": f"/things/?limit=2&page={next_page}" if next_page else None, "previous": None,
            "results": results, **extra}


class ScriptedApi:
    def __init__(self, routes: dict[str, dict[int, list[Resp]]]):
        self.routes = routes
        self.served: dict[tuple[str, int], int] = {}
        self.calls: list[tuple[str, dict[str, str]]] = []
        #: every request as it arrived: method, request target (absolute through a proxy), headers (names
        #: title-cased), body
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                parts = urlsplit(self.path)
                params = dict(parse_qsl(parts.query))
                api.calls.append((parts.path, params))
                body_in = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                api.seen.append((self.command, self.path, {k.title(): v for k, v in self.headers.items()},
                                 body_in))
                page = int(params.get("page", 1))
                script = api.routes.get(parts.path, {}).get(page)
                if not script:
                    resp = Resp({"detail": "Invalid page."}, status=404)
                else:
                    n = api.served.get((parts.path, page), 0)
                    api.served[(parts.path, page)] = n + 1
                    resp = script[min(n, len(script) - 1)]
                body = resp.payload()
                self.send_response(resp.status)
                self.send_header("Content-Type", resp.content_type)
                self.send_header("Content-Length", str(len(body) + (100 if resp.truncate else 0)))
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            do_POST = do_GET  # noqa: N815 - the http.server API

            def log_message(self, *args: Any) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
