"""The embedded set-up's pieces: connections built from the simulators' credentials, pools, the Airflow
environment, the simulators child process, and the clean stop of a whole process group."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from invoice_warehouse import local_airflow as la
from invoice_warehouse.registry import PROVIDERS
from simulators.server import default_credentials

BASE = "http://sim.test:8900"

#: What a user would type into each provider's connection form, for the simulators' demo credentials.
EXPECTED = {
    "akinon": {"conn_type": "akinon", "host": f"{BASE}/akinon", "password": "akinon-sim-token",
               "description": "Akinon OMS (local simulator)"},
    "idh": {"conn_type": "idh", "host": f"{BASE}/idh", "password": "idh-sim-token",
            "description": "IDH API Manager (local simulator)"},
    "dealpos": {"conn_type": "dealpos", "host": f"{BASE}/dealpos",
                "login": "5b0f2a4e-1d7c-4c3e-9a51-3f2d8e6b7a10",
                "password": "c8e1d5f3-7a29-4b6e-8f04-2d9b1c6a5e37",
                "description": "DealPOS (local simulator)"},
    "shopwave": {"conn_type": "shopwave", "host": f"{BASE}/shopwave", "login": "shopwave-sim-client",
                 "password": "shopwave-sim-secret",
                 "extra": json.dumps({"refresh_token": "shopwave-sim-refresh-token"}),
                 "description": "Shopwave (merchantstack) (local simulator)"},
    "redex": {"conn_type": "redex", "host": f"{BASE}/redex", "login": "redex-sim-client",
              "password": "redex-sim-client-secret",
              "extra": json.dumps({"api_key": "3f6c2a9e-7b1d-4e15-9a40-5d2c8b7e1f03"}),
              "description": "REDEX (local simulator)"},
}


@pytest.mark.parametrize("provider", sorted(EXPECTED))
def test_connection_for_each_provider(provider):
    if provider not in PROVIDERS:
        pytest.skip(f"provider {provider} not in the registry yet")
    creds = default_credentials()[provider]
    assert la.connection_for(PROVIDERS[provider], f"{BASE}/{provider}", creds) == EXPECTED[provider]


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_every_credential_lands_in_a_visible_labelled_field(provider):
    """No credential is dropped or put in a field the provider's form hides; extras are form fields."""
    spec = PROVIDERS[provider]
    creds = default_credentials()[provider]
    conn = la.connection_for(spec, f"{BASE}/{provider}", creds)
    extra = json.loads(conn.get("extra", "{}"))
    placed = [conn.get("login"), conn.get("password"), *extra.values()]
    assert sorted(v for v in placed if v) == sorted(creds.values())
    for field in ("login", "password"):
        if field in conn:
            assert field not in spec.hidden_fields and field in spec.relabeling
    assert set(extra) <= {f.name for f in spec.extra_fields}


def test_pools_one_writer_and_one_per_provider():
    pools = la.pools()
    assert pools["duckdb_writer"]["slots"] == 1
    assert set(pools) == {f"{p}_api" for p in PROVIDERS} | {"duckdb_writer"}
    for name, spec in PROVIDERS.items():
        # DealPOS's documented 50 calls / 180 s budget is enforced inside one task: one slot.
        assert pools[f"{name}_api"]["slots"] == (1 if spec.rate_limit else 2)
    if "dealpos" in PROVIDERS:
        assert pools["dealpos_api"]["slots"] == 1
    assert all(p["include_deferred"] is False and p["description"] for p in pools.values())


def test_airflow_env(monkeypatch, tmp_path):
    monkeypatch.setenv("IWH_DATA_DIR", str(tmp_path))
    env = la.airflow_env(18080)
    assert env["AIRFLOW_HOME"] == str(tmp_path / "airflow")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"].endswith("/dags")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "True"
    assert env["AIRFLOW__API__PORT"] == "18080"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://localhost:18080/execution/"
    assert env["IWH_DATA_DIR"] == str(tmp_path)
    assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)


def test_simulators_child_process_serves_credentials_and_stops(tmp_path):
    sim = la.Simulators(la.free_port(), log=tmp_path / "sim.log").start()
    try:
        assert sim.health()["providers"] == list(default_credentials())
        assert sim.credentials() == default_credentials()
        assert sim.base_url("akinon") == f"http://127.0.0.1:{sim.port}/akinon"
        conns = la.connections(sim)
        assert set(conns) == {f"{p}_default" for p in PROVIDERS}
        assert {c["host"] for c in conns.values()} == {sim.base_url(p) for p in PROVIDERS}
    finally:
        sim.stop()
    assert la.port_free(sim.port)


def test_stop_process_group_kills_orphans_that_ignore_sigterm():
    """LocalExecutor workers outlive the scheduler and ignore SIGTERM: the whole group must go."""
    script = textwrap.dedent("""
        import os, signal, sys, time
        # Ctrl-C ends the leader even when this test runs in the background (nohup, `&`), where SIGINT
        # arrives ignored and Python would not install its handler (serve_airflow does the same).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if os.fork() == 0:                       # an idle worker: ignores SIGINT and SIGTERM
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print(os.getpid(), flush=True)
            while True:
                time.sleep(1)
        time.sleep(120)                          # the leader: SIGINT ends it
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    child = int(proc.stdout.readline())
    assert _alive(child)
    t0 = time.monotonic()
    la.stop_process_group(proc, timeout=5)
    assert proc.poll() == -signal.SIGINT
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)
    assert time.monotonic() - t0 < 20


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _setup_only(home, sim_url: str) -> tuple[dict, dict]:
    """docker compose's airflow-init step, run against a SQLite home; (connections, pools) it made."""
    import sqlite3

    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    proc = subprocess.run([sys.executable, "-m", "invoice_warehouse.local_airflow", "--setup-only",
                           "--sim-url", sim_url], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    con = sqlite3.connect(home / "airflow.db")
    try:
        conns = {c: (t, h, login) for c, t, h, login in
                 con.execute("select conn_id, conn_type, host, login from connection")}
        pools = dict(con.execute("select pool, slots from slot_pool where pool != 'default_pool'").fetchall())
    finally:
        con.close()
    return conns, pools


def test_setup_only_against_running_simulators_as_compose_init_does(tmp_path):
    expected_pools = {name: p["slots"] for name, p in la.pools().items()}
    sim = la.Simulators(la.free_port()).start()
    try:
        conns, pools = _setup_only(tmp_path / "with-sim", sim.url)
    finally:
        sim.stop()
    assert pools == expected_pools
    creds = default_credentials()
    assert conns == {f"{p}_default": (spec.conn_type, sim.base_url(p),
                                      la.connection_for(spec, sim.base_url(p), creds[p]).get("login"))
                     for p, spec in PROVIDERS.items()}
    # IWH_SIM_URL= (empty): pools only; the connections to the real APIs are made by hand.
    conns, pools = _setup_only(tmp_path / "no-sim", "")
    assert (conns, pools) == ({}, expected_pools)
