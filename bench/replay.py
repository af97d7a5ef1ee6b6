"""Replay the simulator's own responses with a fixed latency and (almost) no server CPU.

On this 2-core machine the simulator renders each Akinon page in Python (about 80 ms of one core per
100 invoices, most of it FastAPI's ``jsonable_encoder``), on the same cores as the client under test:
a real provider's servers are not on the extractor's machine. To measure the client itself, the
benchmark records every page of one query from the live simulator once (``record``), then serves those
exact bytes from this tiny asyncio HTTP/1.1 server (``serve``): same paths, same query parameters
(matched in any order), same ``next`` links (rewritten to this server), the same fixed latency (an
``asyncio.sleep``, so concurrent requests overlap as they do in the simulator). Both clients, dlt and the
project's extractor, read the same replay; the live-simulator numbers are reported beside them.

    python bench/replay.py serve <recording.pickle> <port> <latency_ms>
"""

from __future__ import annotations

import asyncio
import json
import pickle
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit


def key(path: str, query: str) -> str:
    """A request's identity: path and its query parameters in sorted order (DRF's page 1 is the page
    without ``page``: dlt sends none, the engine sends ``page=1``)."""
    params = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if (k, v) != ("page", "1")]
    return path + "?" + urlencode(sorted(params))


def record(base_url: str, path: str, params: dict[str, Any], headers: dict[str, str], out: Path,
           placeholder: str = "http://REPLAY", threads: int = 4) -> dict[str, Any]:
    """Fetch every page of a DRF list ``path?params`` from the live simulator into ``out``: the first
    page, then pages 2..N (from ``count``) on a few threads; the last page must say ``next: null``."""
    t0 = time.monotonic()
    root = urlsplit(base_url)
    host = f"{root.scheme}://{root.netloc}"
    url = f"{base_url.rstrip('/')}/{path.lstrip('/')}"

    def get(page: int | None) -> tuple[str, bytes]:
        q = {**params, **({"page": page} if page else {})}
        full = f"{url}?{urlencode(q)}"
        with urllib.request.urlopen(urllib.request.Request(full, headers=headers), timeout=600) as resp:
            body = resp.read()
        parts = urlsplit(full)
        return key(parts.path, parts.query), body.replace(host.encode(), placeholder.encode())

    k, first = get(None)
    pages = {k: first}
    n = -(-int(json.loads(first)["count"]) // int(params["limit"]))
    with ThreadPoolExecutor(threads) as pool:
        for k, body in pool.map(get, range(2, n + 1)):
            pages[k] = body
    if json.loads(pages[k])["next"] is not None:
        raise RuntimeError("the last recorded page has a next link: the count was wrong")
    with open(out, "wb") as fh:
        pickle.dump({"placeholder": placeholder, "pages": pages}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return {"pages": n, "bytes": sum(len(b) for b in pages.values()), "seconds": round(time.monotonic() - t0, 3)}


async def _serve(recording: Path, port: int, latency_ms: float) -> None:
    data = pickle.loads(recording.read_bytes())
    me = f"http://127.0.0.1:{port}".encode()
    pages = {k: v.replace(data["placeholder"].encode(), me) for k, v in data["pages"].items()}
    del data
    delay = latency_ms / 1000.0
    served = {"n": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0].decode("latin-1")
                method, target, _ = line.split(" ", 2)
                length = 0
                for h in head.split(b"\r\n")[1:]:
                    if h.lower().startswith(b"content-length:"):
                        length = int(h.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                parts = urlsplit(target)
                if parts.path == "/_replay/health":
                    body, status = json.dumps({"ok": True, "served": served["n"]}).encode(), b"200 OK"
                else:
                    await asyncio.sleep(delay)
                    body = pages.get(key(parts.path, parts.query))
                    status = b"200 OK" if body is not None else b"404 Not Found"
                    body = body if body is not None else b'{"detail":"Invalid page."}'
                    served["n"] += 1
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=256)
    print(f"replaying {len(pages)} pages on http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        asyncio.run(_serve(Path(argv[1]), int(argv[2]), float(argv[3])))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
