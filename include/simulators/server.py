"""Start every provider simulator on one localhost port, one path prefix each.

    iwh-sim --port 8900 --seed 7 --scale 1          # or: python -m simulators.server ...

prints where each provider listens (``http://127.0.0.1:8900/akinon`` ...) and stops cleanly on Ctrl-C
or SIGTERM. The admin API under ``/_sim`` (never faulted, no auth) reads and changes the simulators at
run time: ``GET /_sim/health``, ``GET|POST /_sim/config`` (``as_of``, ``seed``, ``scale``),
``GET|POST /_sim/faults/<provider>``, ``GET /_sim/truth/<provider>?start=&end=`` (ground truth),
``GET /_sim/credentials`` (the simulator's demo credentials, for local connections only), ``GET
/_sim/memo/<provider>`` (size and hits of a provider's rendered-record memo, where it keeps one).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib
import importlib.util
import json
import logging
import signal
import socket
import sys
import threading
import time
from decimal import Decimal
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from simulators.faults import FaultMiddleware, Faults, TokenBook
from simulators.world import World, WorldConfig

# Provider simulators: modules under simulators/ with PROVIDER, CREDENTIALS (the demo credentials it
# accepts), make_app(state) and truth(world, start, end). Adding a provider = adding its module here.
ALL_MODULES = ("dealpos", "idh", "shopwave", "redex", "akinon")
MODULES = tuple(m for m in ALL_MODULES if importlib.util.find_spec(f"simulators.{m}") is not None)


def default_credentials() -> dict[str, dict[str, str]]:
    """Demo credentials the simulators accept (never real ones; overridable per provider)."""
    return {m: dict(importlib.import_module(f"simulators.{m}").CREDENTIALS) for m in MODULES}


class SimState:
    def __init__(self, config: WorldConfig | None = None, faults: dict[str, dict[str, Any]] | None = None):
        self.world = World(config or WorldConfig())
        self.modules = {m: importlib.import_module(f"simulators.{m}") for m in MODULES}
        self._fault_overrides = faults or {}
        self.faults: dict[str, Faults] = {m: self.default_faults(m) for m in MODULES}
        self.credentials = default_credentials()
        self.tokens = {m: TokenBook() for m in MODULES}

    def default_faults(self, provider: str) -> Faults:
        """A provider's documented behaviour (``DEFAULT_FAULTS``, e.g. DealPOS's rate limit) + overrides."""
        base = dict(getattr(self.modules[provider], "DEFAULT_FAULTS", {}))
        return Faults(**{**base, **self._fault_overrides.get(provider, {})})

    def truth(self, provider: str, start: dt.datetime | None = None, end: dt.datetime | None = None) -> dict:
        return self.modules[provider].truth(self.world, start, end)


def _jsonable(x: Any) -> Any:
    if isinstance(x, Decimal):
        return str(x)
    if isinstance(x, dict):
        return {(k if isinstance(k, str) else "|".join(map(str, k))): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, dt.datetime | dt.date):
        return x.isoformat()
    return x


def _ts(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    ts = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=dt.timezone.utc)


def create_app(state: SimState) -> FastAPI:
    root = FastAPI(title="Invoice warehouse: provider simulators")

    @root.get("/_sim/health")
    def health():
        return {"ok": True, "providers": list(state.modules)}

    @root.get("/_sim/config")
    def get_config():
        c = state.world.config
        return {"seed": c.seed, "scale": c.scale, "as_of": c.as_of.isoformat() if c.as_of else None,
                "now": state.world.as_of.isoformat(), "lines_per_invoice": c.lines_per_invoice}

    @root.post("/_sim/config")
    async def set_config(body: dict):
        c = state.world.config
        if "as_of" in body:
            c.as_of = _ts(body["as_of"])
        for k in ("seed", "scale", "lines_per_invoice", "per_day"):
            if k in body:
                setattr(c, k, body[k])
        return get_config()

    @root.get("/_sim/faults/{provider}")
    def get_faults(provider: str):
        if provider not in state.faults:
            return JSONResponse({"detail": f"unknown provider {provider}"}, 404)
        return _jsonable(state.faults[provider].to_dict())

    @root.post("/_sim/faults/{provider}")
    async def set_faults(provider: str, body: dict):
        if provider not in state.faults:
            return JSONResponse({"detail": f"unknown provider {provider}"}, 404)
        if body.get("reset"):
            state.faults[provider] = state.default_faults(provider)
            body = {k: v for k, v in body.items() if k != "reset"}
        try:
            state.faults[provider].update(**body)
        except ValueError as exc:
            return JSONResponse({"detail": str(exc)}, 400)
        return _jsonable(state.faults[provider].to_dict())

    @root.get("/_sim/truth/{provider}")
    def get_truth(provider: str, start: str | None = None, end: str | None = None):
        if provider not in state.modules:
            return JSONResponse({"detail": f"unknown provider {provider}"}, 404)
        return Response(json.dumps(_jsonable(state.truth(provider, _ts(start), _ts(end)))),
                        media_type="application/json")

    @root.get("/_sim/credentials")
    def creds():
        return state.credentials

    apps = {name: module.make_app(state) for name, module in state.modules.items()}

    @root.get("/_sim/memo/{provider}")
    def get_memo(provider: str):
        """The provider's rendered-record memo (simulators/jsonbody.py BytesMemo), if it keeps one."""
        if provider not in apps:
            return JSONResponse({"detail": f"unknown provider {provider}"}, 404)
        memo = getattr(apps[provider].state, "record_memo", None)
        if memo is None:
            return {"memo": False}
        return {"memo": True, "entries": len(memo), "bytes": memo.size, "max_bytes": memo.max_bytes,
                "hits": memo.hits, "misses": memo.misses}

    for name, app in apps.items():
        root.mount(f"/{name}", FaultMiddleware(app, lambda n=name: state.faults[n]))
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SimServer:
    """The simulators in a background thread (tests) or the foreground (CLI)."""

    def __init__(self, state: SimState | None = None, host: str = "127.0.0.1", port: int | None = None):
        self.state = state or SimState()
        self.host = host
        self.port = port or free_port()
        config = uvicorn.Config(create_app(self.state), host=host, port=self.port, log_level="warning",
                                access_log=False, lifespan="off", timeout_keep_alive=30)
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def base_url(self, provider: str) -> str:
        return f"{self.url}/{provider}"

    def start(self) -> SimServer:
        self._thread = threading.Thread(target=self.server.run, name="simulators", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"simulators did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread:
            self._thread.join(timeout=10)

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="iwh-sim", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8900)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--as-of", default=None, help="the simulators' 'now' (ISO); default: the real time")
    p.add_argument("--latency-ms", type=float, default=0.0, help="latency added to every data request")
    p.add_argument("--faults", default=None, help="JSON {provider: {fault settings}} applied at start")
    p.add_argument("--lines-per-invoice", type=int, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    faults = json.loads(args.faults) if args.faults else {}
    for m in MODULES:
        faults.setdefault(m, {}).setdefault("latency_ms", args.latency_ms)
    state = SimState(WorldConfig(seed=args.seed, scale=args.scale, as_of=_ts(args.as_of),
                                 lines_per_invoice=args.lines_per_invoice), faults)
    # The simulators keep large caches of long-lived objects (facts, rendered records); with the default
    # thresholds Python's collector keeps walking them, which was most of a warm daily REDEX sweep.
    gc.set_threshold(50_000, 20, 100)
    server = SimServer(state, args.host, args.port)
    for m in MODULES:
        print(f"{m:10s} {server.base_url(m)}", flush=True)
    print(f"{'admin':10s} {server.url}/_sim/health", flush=True)

    def stop(*_: Any) -> None:
        server.server.should_exit = True

    signal.signal(signal.SIGTERM, stop)
    server.server.run()
    print("simulators stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
