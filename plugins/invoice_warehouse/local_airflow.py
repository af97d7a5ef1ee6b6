"""Airflow on this machine, the embedded default: SQLite metadata, the five simulators, the UI on :8080.

    make airflow        # python -m invoice_warehouse.local_airflow [--port 8080] [--sim-port 8900]
    make docs           # python -m invoice_warehouse.local_airflow --dbt-docs [--docs-port 8081]

``make airflow`` starts the provider simulators (``iwh-sim``, a child process), prepares Airflow in
``$IWH_DATA_DIR/airflow`` (``airflow db migrate``; one connection per provider of the registry pointed
at its simulator, with the demo credentials the simulator serves at ``/_sim/credentials``; the pools
``<provider>_api`` and ``duckdb_writer``) and runs ``airflow standalone`` (scheduler, dag-processor,
triggerer, api-server) until Ctrl-C. The UI needs no login: the simple auth manager makes everyone
admin (``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True``), which is for a laptop only.

``make demo`` (invoice_warehouse.demo) uses the same set-up functions, so the demo's connections and
pools are exactly those the UI shows afterwards.

``--dbt-docs`` builds the dbt documentation site (``dbt docs generate``, with the catalog read from a
copy of the published warehouse when there is one) and serves it on http://localhost:8081.

Nothing here imports Airflow at module level: Airflow reads ``AIRFLOW_HOME`` when first imported, so
callers run :func:`configure_environment` first.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from invoice_warehouse import config

SIM_PORT = 8900
UI_PORT = 8080
DOCS_PORT = 8081
WRITER_POOL = "duckdb_writer"  # = pipeline.WRITER_POOL (not imported: keep this module Airflow-free)

#: Credential names the simulators serve, in the order they fill the connection's Password and Login
#: fields (the same rule as tests/helpers.conn_info); every other credential goes to the extra, where
#: the provider's labelled custom fields (spec.extra_fields) read it.
PASSWORD_KEYS = ("token", "password", "client_secret")
LOGIN_KEYS = ("login", "client_id")


# --- environment ---------------------------------------------------------------------------------
def airflow_home() -> Path:
    return config.data_dir() / "airflow"


def airflow_env(api_port: int = UI_PORT, home: Path | None = None) -> dict[str, str]:
    """The environment every Airflow process of the embedded set-up runs with."""
    return {
        "AIRFLOW_HOME": str(home or airflow_home()),
        "AIRFLOW__CORE__DAGS_FOLDER": str(config.home() / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # Laptop only: no login, everyone is admin (the simple auth manager's documented switch).
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__PORT": str(api_port),
        # Workers reach the Execution API on the api-server's port (default assumes 8080).
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{api_port}/execution/",
        # The connection form's Test button (off by default since 2.7).
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        # A laptop: eight task processes at most (the LocalExecutor forks one worker per slot).
        "AIRFLOW__CORE__PARALLELISM": "8",
        "IWH_HOME": str(config.home()),
        "IWH_DATA_DIR": str(config.data_dir()),
        "PYTHONUNBUFFERED": "1",
        # standalone starts its components as `airflow ...` from PATH: this interpreter's first.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }


def configure_environment(api_port: int = UI_PORT) -> dict[str, str]:
    """Put :func:`airflow_env` into ``os.environ`` (before anything imports Airflow)."""
    env = airflow_env(api_port)
    os.environ.update(env)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    return env


def airflow_cli() -> list[str]:
    exe = Path(sys.executable).with_name("airflow")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "airflow"]


def run_airflow(args: list[str], env: Mapping[str, str] | None = None, timeout: float = 600) -> str:
    """``airflow <args>`` in a child process; raises with the output's tail when it fails."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([*airflow_cli(), *args], env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise RuntimeError(f"airflow {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


# --- simulators ----------------------------------------------------------------------------------
def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 10) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


class Simulators:
    """``iwh-sim`` in a child process (its own GIL: the extraction does not compete with the server).

    ``port=None`` tries :data:`SIM_PORT` and falls back to a free port. The simulators' "now" is the
    real time unless ``as_of`` is given; ``faults`` are applied at start (``--faults``)."""

    def __init__(self, port: int | None = None, *, seed: int = 7, scale: float = 1.0,
                 as_of: str | None = None, faults: Mapping[str, Mapping[str, Any]] | None = None,
                 log: Path | None = None, url: str | None = None):
        #: ``url``: simulators that already run elsewhere (docker compose's ``simulators`` service);
        #: then :meth:`start` only waits for them to answer.
        self.external = url is not None
        self.port = port or (SIM_PORT if self.external or port_free(SIM_PORT) else free_port())
        self.url = url.rstrip("/") if url else f"http://127.0.0.1:{self.port}"
        self.cmd = [sys.executable, "-m", "simulators.server", "--port", str(self.port), "--seed", str(seed),
                    "--scale", str(scale)]
        if as_of:
            self.cmd += ["--as-of", as_of]
        if faults:
            self.cmd += ["--faults", json.dumps(faults)]
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> Simulators:
        if self.external:
            return self._wait(timeout)
        if self.log:
            self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log or os.devnull, "ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return self._wait(timeout)

    def _wait(self, timeout: float) -> Simulators:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the simulators exited with {self.proc.returncode} (log: {self.log})")
            try:
                get_json(f"{self.url}/_sim/health", timeout=2)
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the simulators did not answer on {self.url}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def base_url(self, provider: str) -> str:
        return f"{self.url}/{provider}"

    def health(self) -> dict[str, Any]:
        return get_json(f"{self.url}/_sim/health")

    def credentials(self) -> dict[str, dict[str, str]]:
        return get_json(f"{self.url}/_sim/credentials")

    def sim_config(self) -> dict[str, Any]:
        return get_json(f"{self.url}/_sim/config")

    def __enter__(self) -> Simulators:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- connections and pools -----------------------------------------------------------------------
def connection_for(spec: Any, base_url: str, credentials: Mapping[str, str]) -> dict[str, Any]:
    """The Airflow connection (``airflow connections import`` shape) a user would create for ``spec``
    against ``base_url``: Password = the token or client secret, Login = the client id (when the form
    shows a Login field), everything else in the extra under the credential's own name."""
    creds = dict(credentials)
    hidden = set(spec.hidden_fields)
    conn: dict[str, Any] = {"conn_type": spec.conn_type, "host": base_url,
                            "description": f"{spec.title} (local simulator)"}
    if "password" not in hidden:
        key = next((k for k in PASSWORD_KEYS if k in creds), None)
        if key:
            conn["password"] = creds.pop(key)
    if "login" not in hidden:
        key = next((k for k in LOGIN_KEYS if k in creds), None)
        if key:
            conn["login"] = creds.pop(key)
    if creds:
        conn["extra"] = json.dumps(creds, sort_keys=True)
    return conn


def connections(sim: Simulators) -> dict[str, dict[str, Any]]:
    """One connection per provider of the registry (``<provider>_default``), pointed at ``sim``."""
    from invoice_warehouse.registry import PROVIDERS

    creds = sim.credentials()
    missing = sorted(set(PROVIDERS) - set(creds))
    if missing:
        raise RuntimeError(f"the simulators serve no credentials for {missing}")
    return {spec.default_conn_id: connection_for(spec, sim.base_url(name), creds[name])
            for name, spec in PROVIDERS.items()}


def pool_slots(spec: Any) -> int:
    """Concurrent extract tasks a provider gets. A documented rate limit (DealPOS: 50 calls per 180 s
    across all endpoints) is enforced by a limiter inside one task, so such a provider gets one slot:
    two tasks would each believe they own the whole budget. Others get two entities at a time (each task
    already runs ``spec.max_concurrency`` requests in parallel)."""
    return 1 if spec.rate_limit else 2


def pools() -> dict[str, dict[str, Any]]:
    """``airflow pools import`` shape: ``<provider>_api`` per provider and the single DuckDB writer."""
    from invoice_warehouse.registry import PROVIDERS

    out = {f"{name}_api": {"slots": pool_slots(spec), "include_deferred": False,
                           "description": f"{spec.title}: concurrent extract tasks (the API's budget)"}
           for name, spec in PROVIDERS.items()}
    out[WRITER_POOL] = {"slots": 1, "include_deferred": False,
                        "description": "The one task at a time that writes the working DuckDB file"}
    return out


def _import_file(kind: str, payload: Mapping[str, Any], env: Mapping[str, str]) -> str:
    # The connections file holds credentials: private, and deleted as soon as Airflow has read it.
    fd, path = tempfile.mkstemp(prefix=f"iwh-{kind}-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh)
        args = [kind, "import", path] + (["--overwrite"] if kind == "connections" else [])
        return run_airflow(args, env)
    finally:
        os.unlink(path)


def setup_airflow(sim: Simulators | None, env: Mapping[str, str], log=print,
                  reserialize: bool = False) -> dict[str, Any]:
    """``airflow db migrate``, then the pools and (with simulators) the connections, side by side;
    ``reserialize``: also write the DAGs to the metadata database now (``airflow dags reserialize``),
    instead of waiting for a dag-processor (the demo's parallel ``dag.test()`` runs need them there
    first: each would otherwise insert the same new DAG rows at the same moment)."""
    from concurrent.futures import ThreadPoolExecutor

    t0 = time.monotonic()
    run_airflow(["db", "migrate"], env)
    log(f"metadata database migrated ({time.monotonic() - t0:.0f}s)")
    conns, pls = connections(sim) if sim else {}, pools()
    with ThreadPoolExecutor(2) as ex:
        jobs = [ex.submit(_import_file, "pools", pls, env)]
        if conns:
            jobs.append(ex.submit(_import_file, "connections", conns, env))
        for job in jobs:
            job.result()
    if reserialize:
        run_airflow(["dags", "reserialize"], env)
    slots = ", ".join(f"{name}={pool['slots']}" for name, pool in pls.items())
    log(f"{len(conns)} connections ({', '.join(conns)}) and {len(pls)} pools ({slots})")
    return {"connections": conns, "pools": pls}


# --- airflow standalone --------------------------------------------------------------------------
def wait_for_api(port: int, timeout: float = 240, proc: subprocess.Popen | None = None) -> None:
    """Until the api-server answers its health check (and the scheduler reports healthy)."""
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/api/v2/monitor/health"
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"airflow standalone exited with {proc.returncode}")
        try:
            health = get_json(url, timeout=3)
            if health.get("scheduler", {}).get("status") == "healthy":
                return
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Airflow API did not become healthy on {url}")
        time.sleep(1)


def start_standalone(env: Mapping[str, str], log_file: Path | None = None) -> subprocess.Popen:
    """``airflow standalone`` in its own process group (so stopping it stops its four components)."""
    cmd, full_env = [*airflow_cli(), "standalone"], {**os.environ, **env}
    if not log_file:
        return subprocess.Popen(cmd, env=full_env, start_new_session=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a member we may not signal: treat as alive
        return True
    return True


def stop_process_group(proc: subprocess.Popen, timeout: float = 15) -> None:
    """Stop ``proc`` (started with ``start_new_session``) and everything in its process group.

    SIGINT is standalone's clean shutdown; then SIGTERM, then SIGKILL. The LocalExecutor's forked
    workers outlive the scheduler when it exits and ignore SIGTERM while idle, so whatever is left of
    the group once its leader has gone is killed too (the group is ours: we created it)."""
    pgid = proc.pid
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)
    deadline = time.monotonic() + 5
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def serve_airflow(port: int, sim_port: int | None, *, scale: float = 1.0,
                  log_file: Path | None = None) -> int:
    env = configure_environment(port)
    if not port_free(port):
        print(f"port {port} is in use: stop what runs there or pass --port", file=sys.stderr)
        return 2
    # Ctrl-C (even when started in the background, where SIGINT arrives ignored) and SIGTERM (a service
    # manager, a test) shut down cleanly: Airflow, then the simulators.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sim = Simulators(sim_port, scale=scale, log=config.data_dir() / "logs" / "simulators.log").start()
    print(f"simulators on {sim.url} (now = {sim.sim_config()['now']})", flush=True)
    proc = None
    try:
        setup_airflow(sim, env, log=lambda m: print(m, flush=True))
        proc = start_standalone(env, log_file)
        print(f"starting airflow standalone (AIRFLOW_HOME={env['AIRFLOW_HOME']}) ...", flush=True)
        wait_for_api(port, proc=proc)
        print(f"\nAirflow UI: http://localhost:{port}  (no login: simple auth manager, all admins)\n"
              "Ctrl-C stops Airflow and the simulators.", flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if proc is not None:
            stop_process_group(proc)
        sim.stop()


# --- dbt docs ------------------------------------------------------------------------------------
def build_dbt_docs() -> Path:
    """``dbt docs generate`` into ``$IWH_DATA_DIR/dbt/docs``; the catalog comes from a copy of the
    published warehouse (so a running build or an analyst's open file is never touched)."""
    from invoice_warehouse.warehouse.dbt import run_dbt

    target = config.data_dir() / "dbt" / "docs"
    target.mkdir(parents=True, exist_ok=True)
    published = config.published_db()
    with tempfile.TemporaryDirectory(prefix="iwh-docs-") as tmp:
        db = Path(tmp) / "warehouse.duckdb"
        args = ["docs", "generate", "--target-path", str(target)]
        if published.exists():
            shutil.copyfile(published, db)
        else:
            args.append("--empty-catalog")  # nothing built yet: model docs without column types
        run_dbt(args, work_db=db)
    return target


def serve_dbt_docs(port: int) -> int:
    import functools
    import http.server

    site = build_dbt_docs()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as httpd:
        print(f"dbt docs: http://localhost:{port}  (Ctrl-C stops)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            httpd.serve_forever()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m invoice_warehouse.local_airflow",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=UI_PORT, help="the Airflow UI / API port (8080)")
    p.add_argument("--sim-port", type=int, default=None, help=f"simulators' port (default {SIM_PORT} or free)")
    p.add_argument("--scale", type=float, default=1.0, help="simulated volume (1 = default)")
    p.add_argument("--log-file", type=Path, default=None, help="write Airflow's output here, not the terminal")
    p.add_argument("--dbt-docs", action="store_true", help="build and serve the dbt docs site instead")
    p.add_argument("--docs-port", type=int, default=DOCS_PORT)
    p.add_argument("--setup-only", action="store_true",
                   help="only migrate, create the pools and the connections, in the current Airflow "
                        "environment (docker compose's airflow-init); no simulators are started")
    p.add_argument("--sim-url", default=None,
                   help="with --setup-only: the running simulators the connections point at "
                        "(empty: pools only, connections are made by hand for the real APIs)")
    args = p.parse_args(argv)
    if args.dbt_docs:
        return serve_dbt_docs(args.docs_port)
    if args.setup_only:
        sim = Simulators(url=args.sim_url).start(timeout=120) if args.sim_url else None
        setup_airflow(sim, {}, log=lambda m: print(m, flush=True))
        return 0
    return serve_airflow(args.port, args.sim_port, scale=args.scale, log_file=args.log_file)


if __name__ == "__main__":
    sys.exit(main())
