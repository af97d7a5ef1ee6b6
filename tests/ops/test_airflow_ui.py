"""``make airflow`` for real: airflow standalone + the simulators, driven by headless Chromium.

Starts ``python -m invoice_warehouse.local_airflow`` on free ports with its own data directory, then
in the browser: the DAG list shows the five extract DAGs and the warehouse DAG; the connections page
lists one connection per provider pointed at the simulators; each provider's connection form shows its
relabelled fields (``OMS base URL``/``API token`` for Akinon, ``Client ID``/``Client Secret`` for
DealPOS ...) and no stored secret ever reaches the page. Screenshots go to ``$IWH_SCREENSHOT_DIR``
(default: the test's temp directory). Through the REST API: each connection's Test succeeds against
its simulator (the provider hook's ``test_connection``) and the pools are those the project defines.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from invoice_warehouse import local_airflow as la
from invoice_warehouse.registry import PROVIDERS
from simulators.server import default_credentials
from tests.ops.chromium import Browser, find_chromium

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(find_chromium() is None,
                       reason="chromium is not installed (apt-get install -y chromium; the CI installs it)"),
]
ROOT = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 1440, 1000
#: The Airflow connection form's own labels for the standard fields a provider may hide or relabel.
DEFAULT_LABELS = {"host": "Host", "schema": "Schema", "login": "Login", "password": "Password", "port": "Port"}


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    """``make airflow`` in a child process (its own data dir, free ports); yields the UI's base URL."""
    data = tmp_path_factory.mktemp("ui-data")
    port, sim_port = la.free_port(), la.free_port()
    env = {**os.environ, "IWH_DATA_DIR": str(data)}
    log = data / "standalone.log"
    proc = subprocess.Popen([sys.executable, "-m", "invoice_warehouse.local_airflow", "--port", str(port),
                             "--sim-port", str(sim_port), "--log-file", str(log)],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    base = f"http://localhost:{port}"
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        # The launcher prints the UI's address once the api-server and the scheduler are healthy.
        _wait(lambda: any(ln.startswith("Airflow UI:") for ln in lines) or proc.poll() is not None, 240,
              "the launcher's 'Airflow UI:' line")
        assert any(ln.startswith("Airflow UI:") for ln in lines), "".join(lines) + _tail(log)
        # The dag-processor has serialized every DAG file once.
        _wait(lambda: _get(f"{base}/api/v2/dags")["total_entries"] == len(PROVIDERS) + 1, 120, "DAGs parsed")
        yield {"base": base, "sim": f"http://127.0.0.1:{sim_port}", "stdout": "".join(lines), "log": log}
    finally:
        # The launcher stops Airflow (up to ~35 s) and then the simulators (up to 15 s) on SIGINT.
        la.stop_process_group(proc, timeout=90)
    assert la.port_free(port) and la.port_free(sim_port)


@pytest.fixture(scope="module")
def browser():
    with Browser(width=WIDTH, height=HEIGHT) as b:
        yield b


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    path = Path(os.environ.get("IWH_SCREENSHOT_DIR") or tmp_path_factory.mktemp("screenshots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _post(url: str, body: dict):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if cond():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(1)


def _tail(log: Path) -> str:
    return log.read_text()[-3000:] if log.exists() else ""


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def _labels(browser: Browser) -> list[str]:
    return browser.js("[...document.querySelectorAll('[role=dialog] label')]"
                      ".map(l => l.innerText.replace('*', '').trim())")


def test_launcher_reports_its_setup(airflow):
    out = airflow["stdout"]
    assert f"simulators on {airflow['sim']}" in out
    assert f"{len(PROVIDERS)} connections ({', '.join(f'{p}_default' for p in PROVIDERS)})" in out
    assert "duckdb_writer=1" in out


def test_dag_list_shows_every_extract_dag_and_the_warehouse(airflow, browser, shots):
    browser.goto(f"{airflow['base']}/dags")
    expected = sorted([f"extract_{p}" for p in PROVIDERS] + ["warehouse"])
    text = browser.wait_text(*expected, f"{len(expected)} Dags")
    hrefs = browser.js("[...new Set([...document.querySelectorAll('a[href^=\"/dags/\"]')]"
                       ".map(a => a.getAttribute('href').split('/')[2]))]")
    assert sorted(hrefs) == expected
    assert "0 0 * * *" in text  # the extract DAGs' daily schedule
    shot = browser.screenshot(shots / "dags.png")
    assert _png_size(shot) == (WIDTH, HEIGHT)


def test_connections_page_lists_one_per_provider_at_the_simulators(airflow, browser, shots):
    browser.goto(f"{airflow['base']}/connections")
    text = browser.wait_text(*(f"{p}_default" for p in PROVIDERS))
    assert f"{len(PROVIDERS)} Connections" in text
    for p in PROVIDERS:
        assert f"{airflow['sim']}/{p}" in text
    # Secrets are never sent to the browser: not one of the simulators' credentials is in the page.
    dom = browser.dump_dom()
    for creds in default_credentials().values():
        for secret in creds.values():
            assert secret not in dom
    browser.screenshot(shots / "connections.png")


def test_akinon_edit_form_shows_its_relabelled_fields(airflow, browser, shots):
    if "akinon" not in PROVIDERS:
        pytest.skip("akinon not in the registry")
    browser.goto(f"{airflow['base']}/connections")
    browser.wait_text("akinon_default")
    browser.click("[...document.querySelectorAll('tr')].find(r => r.innerText.includes('akinon_default'))"
                  ".querySelector('button[aria-label=\"Edit Connection\"]')")
    browser.wait_text("Edit Connection", "OMS base URL", "API token", selector='[role="dialog"]')
    assert _labels(browser) == ["Connection ID", "Connection Type", "Description", "OMS base URL", "API token",
                                "Authorization scheme"]
    values = browser.js("Object.fromEntries([...document.querySelectorAll('[role=dialog] input, "
                        "[role=dialog] textarea')].filter(i => i.name).map(i => [i.name, i.value]))")
    assert values["connection_id"] == "akinon_default"
    assert values["host"] == f"{airflow['sim']}/akinon"
    assert values["password"] != default_credentials()["akinon"]["token"]  # masked, never the token
    assert "akinon-sim-token" not in browser.dump_dom()
    shot = browser.screenshot(shots / "connection-akinon-edit.png")
    assert _png_size(shot) == (WIDTH, HEIGHT)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_add_form_of_each_connection_type(airflow, browser, shots, provider):
    """The Add Connection form, for the provider's connection type, relabels and hides what its spec says."""
    spec = PROVIDERS[provider]
    browser.goto(f"{airflow['base']}/connections")
    browser.wait_text(f"{provider}_default")
    browser.click("[...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'Add Connection')")
    browser.wait_text("Add Connection", "Connection Type", selector='[role="dialog"]')
    browser.js("document.querySelector('[role=dialog] input[role=combobox]').focus()")
    browser.call("Input.insertText", text=spec.title)
    browser.wait_for(f"[...document.querySelectorAll('[role=option]')].some(o => o.innerText.trim() === "
                     f"{json.dumps(spec.title)})", 20, f"option {spec.title}")
    browser.click(f"[...document.querySelectorAll('[role=option]')].find(o => o.innerText.trim() === "
                  f"{json.dumps(spec.title)})")
    visible = [f for f in DEFAULT_LABELS if f not in spec.hidden_fields]
    expected = [spec.relabeling.get(f, DEFAULT_LABELS[f]) for f in visible]
    browser.wait_text(*expected, selector='[role="dialog"]')
    labels = _labels(browser)
    assert labels[:3] == ["Connection ID", "Connection Type", "Description"]
    assert labels[3:3 + len(expected)] == expected
    assert labels[3 + len(expected):] == [f.label for f in spec.extra_fields]
    for f in spec.hidden_fields:
        if f in DEFAULT_LABELS:
            assert DEFAULT_LABELS[f] not in labels
    placeholders = browser.js("Object.fromEntries([...document.querySelectorAll('[role=dialog] input')]"
                              ".filter(i => i.name).map(i => [i.name, i.placeholder]))")
    for field, text in spec.placeholders.items():
        assert placeholders[field] == text
    types = browser.js("Object.fromEntries([...document.querySelectorAll('[role=dialog] input')]"
                       ".filter(i => i.name).map(i => [i.name, i.type]))")
    assert types.get("password", "password") == "password"  # the secret is a password input
    for f in spec.extra_fields:  # so is a secret extra field (Shopwave's refresh token, REDEX's API key)
        assert types[f"element_{f.name}"] == ("password" if f.secret else "text"), f.name
    if spec.extra_fields:  # open the "Extra Fields" section so the screenshot shows them too
        browser.mouse_click("[...document.querySelectorAll('[role=dialog] button')]"
                            ".find(b => b.innerText.trim() === 'Extra Fields')")
        browser.wait_text(*(f.label for f in spec.extra_fields), selector='[role="dialog"]')
    shot = browser.screenshot(shots / f"connection-{provider}-add.png")
    assert _png_size(shot) == (WIDTH, HEIGHT)


def test_each_connection_tests_ok_against_its_simulator(airflow):
    """The connection form's Test, through the REST API: the provider hook authenticates and reads.

    (Airflow 3.3's list-row Test button posts ``port: 0`` for a hidden port field and the API then
    refuses to reuse the stored secret; the request below is the stored connection as the API returns
    it, which is what that button means to send.)"""
    for p, spec in PROVIDERS.items():
        stored = _get(f"{airflow['base']}/api/v2/connections/{p}_default")
        assert stored["password"] in (None, "***")  # the API masks stored secrets too
        assert _post(f"{airflow['base']}/api/v2/connections/test", stored) == {
            "status": True, "message": f"Connected to {spec.title}"}


def test_pools(airflow):
    pools = {p["name"]: p["slots"] for p in _get(f"{airflow['base']}/api/v2/pools")["pools"]}
    expected = {name: pool["slots"] for name, pool in la.pools().items()}
    assert {k: v for k, v in pools.items() if k != "default_pool"} == expected
    assert pools["duckdb_writer"] == 1
