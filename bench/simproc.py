"""The simulators in their own process for the benchmarks (the ``iwh-sim`` CLI as a child process).

The extractor must not share a GIL with the server it reads from, so the benchmark starts the real
``iwh-sim`` command line, waits for ``/_sim/health``, and then shapes the world through the admin API:
``per_day`` (exact invoices per day) and ``as_of`` through ``POST /_sim/config``, faults (latency, the
DealPOS rate limit) through ``POST /_sim/faults/<provider>``. Nothing is added to the simulator.

Exact volumes: with ``per_day = n`` every day from the epoch (2025-01-01) has exactly ``n`` invoices,
all created between 07:00 and 21:00 UTC; ``as_of`` at midnight ``days`` later makes exactly
``n * days`` invoices exist, and a window [epoch, as_of + 1 day) holds all of them.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

UTC = dt.timezone.utc
EPOCH = dt.datetime(2025, 1, 1, tzinfo=UTC)
#: Ids are ``day_index * 10_000 + i`` in several simulators: a day holds at most 10 000 invoices.
MAX_PER_DAY = 10_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def volume(n: int, max_per_day: int = MAX_PER_DAY) -> tuple[int, int]:
    """(per_day, days) with per_day * days == n exactly and per_day <= max_per_day (n must allow it)."""
    days = max(1, math.ceil(n / max_per_day))
    while n % days:
        days += 1
    return n // days, days


class Sim:
    """``iwh-sim`` in a child process; ``with Sim(...) as sim:`` then ``sim.base_url("akinon")``."""

    def __init__(self, *, latency_ms: float = 20.0, lines_per_invoice: int = 3, seed: int = 7,
                 faults: dict[str, dict[str, Any]] | None = None, log: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        exe = Path(sys.executable).with_name("iwh-sim")
        self.cmd = [str(exe), "--port", str(self.port), "--seed", str(seed), "--latency-ms", str(latency_ms),
                    "--lines-per-invoice", str(lines_per_invoice), "--as-of", EPOCH.isoformat()]
        if faults:
            self.cmd += ["--faults", json.dumps(faults)]
        self.log = log
        self.proc: subprocess.Popen | None = None
        self._credentials: dict[str, dict[str, str]] | None = None

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> Sim:
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115 - closed by the child
        self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"iwh-sim exited with {self.proc.returncode} (log: {self.log})")
            try:
                self.get("/_sim/health")
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"iwh-sim did not answer on {self.url}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Sim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    # --- admin API ---------------------------------------------------------------------------------
    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=600) as resp:
            return json.loads(resp.read())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    def configure(self, *, as_of: dt.datetime, per_day: dict[str, float]) -> dict[str, Any]:
        return self.post("/_sim/config", {"as_of": as_of.isoformat(), "per_day": per_day})

    def faults(self, provider: str, **settings: Any) -> dict[str, Any]:
        return self.post(f"/_sim/faults/{provider}", settings)

    def fault_counters(self, provider: str) -> dict[str, Any]:
        f = self.get(f"/_sim/faults/{provider}")
        return {"requests": f.get("requests", 0), "injected": f.get("injected", {})}

    def base_url(self, provider: str) -> str:
        return f"{self.url}/{provider}"

    def credentials(self) -> dict[str, dict[str, str]]:
        if self._credentials is None:
            self._credentials = self.get("/_sim/credentials")
        return self._credentials

    def conn(self, provider: str) -> dict[str, Any]:
        """The connection parts a user would enter for ``provider`` (as tests/helpers.py builds them)."""
        creds = dict(self.credentials()[provider])
        password = creds.pop("token", None) or creds.pop("password", None) or creds.pop("client_secret", None)
        login = creds.pop("login", None) or creds.pop("client_id", None)
        return {"conn_id": f"{provider}_default", "host": self.base_url(provider), "login": login,
                "password": password, "extra": creds}


def rss_kb_of(pid: int) -> int:
    """Current VmHWM (peak resident set) of a running process, from /proc (the simulator's peak)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


