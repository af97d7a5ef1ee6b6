"""Secrets stay in Airflow connections; TLS is verified; API data never becomes SQL; the published
warehouse cannot be written.

The leak test runs the real DAGs (``dag.test`` of every extract DAG and of the warehouse DAG) with
connections from ``AIRFLOW_CONN_*`` only, holding distinctive secrets that the simulators are told to
accept, then searches everything the run left behind for every secret and every token the simulators
issued: the captured output and log records, every file under AIRFLOW_HOME (task logs, the metadata
database) and under IWH_DATA_DIR (Parquet read back value by value, DuckDB files table by table and
column by column, dbt logs and artifacts, manifests, any report).
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import secrets
import sqlite3
import ssl
import subprocess
import threading
import uuid
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.sdk.exceptions import AirflowNotFoundException

from invoice_warehouse import config
from invoice_warehouse.engine.hook import build_client
from invoice_warehouse.engine.http import ApiError, RetryPolicy
from invoice_warehouse.engine.runner import run_stream
from invoice_warehouse.engine.schema import Field, Schema
from invoice_warehouse.engine.spec import ConnInfo, ProviderSpec, Stream
from invoice_warehouse.registry import HOOKS, PROVIDERS
from invoice_warehouse.warehouse.load import load_all
from tests.reliability import harness
from tests.reliability.conftest import new_sim
from tests.unit.fakes import T0, T1, FakeClient

UTC = dt.timezone.utc
#: credential fields that are secrets (logins / client ids are not)
SECRET_FIELDS = ("client_secret", "token", "refresh_token", "api_key", "password")


def distinctive_credentials() -> dict[str, dict[str, str]]:
    """New credentials per provider, in the formats the APIs want (DealPOS: GUIDs; REDEX: <= 36 chars)."""
    tag = secrets.token_hex(4)
    return {
        "dealpos": {"client_id": str(uuid.uuid4()), "client_secret": str(uuid.uuid4())},
        "idh": {"token": f"idh-leakcheck-{tag}-{secrets.token_hex(12)}"},
        "shopwave": {"client_id": f"sw-client-{tag}", "client_secret": f"sw-secret-{secrets.token_hex(12)}",
                     "refresh_token": f"sw-refresh-{secrets.token_hex(12)}"},
        "redex": {"client_id": f"rx-client-{tag}", "client_secret": f"rx-{secrets.token_hex(14)}",
                  "api_key": str(uuid.uuid4())},
        "akinon": {"token": f"akinon-leakcheck-{tag}-{secrets.token_hex(12)}"},
    }


# --- the search ----------------------------------------------------------------------------------

def readable_text(path: Path) -> str:
    """A file's bytes as text, plus what a byte search cannot see: Parquet values (compressed pages),
    DuckDB tables (compressed columns) and SQLite rows, read back through their own readers."""
    data = path.read_bytes()
    parts = [data.decode("utf-8", "replace"), data.decode("latin-1")]
    if data[:4] == b"PAR1":
        parts.append(repr(pq.read_table(path).to_pylist()))
        parts.append(repr(pq.read_metadata(path).metadata))
    elif data[8:12] == b"DUCK":
        with duckdb.connect(str(path), read_only=True) as con:
            tables = con.execute("SELECT table_schema, table_name FROM information_schema.tables "
                                 "WHERE table_catalog = current_database()").fetchall()
            for schema, table in tables:
                parts.append(repr(con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()))
    elif data[:16] == b"SQLite format 3\x00":
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
            parts.extend(con.iterdump())
    return "\n".join(parts)


def find(needles: set[str], roots: list[Path], texts: dict[str, str]) -> dict[str, list[str]]:
    """Where each needle occurs: file paths under ``roots`` and named texts."""
    hits: dict[str, list[str]] = {}
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            text = readable_text(path)
            for n in needles:
                if n in text:
                    hits.setdefault(n, []).append(str(path))
    for name, text in texts.items():
        for n in needles:
            if n in text:
                hits.setdefault(n, []).append(name)
    return hits


def test_the_search_finds_a_planted_secret(tmp_path):
    secret = f"planted-{secrets.token_hex(8)}"
    pq.write_table(pa.table({"v": [secret] * 100}), tmp_path / "a.parquet", compression="snappy")
    with duckdb.connect(str(tmp_path / "b.duckdb")) as con:
        con.execute("CREATE TABLE t AS SELECT ? || range AS v FROM range(2000)", [secret])
    with sqlite3.connect(tmp_path / "c.db") as con:
        con.execute("CREATE TABLE t (v)")
        con.execute("INSERT INTO t VALUES (?)", [secret])
    (tmp_path / "d.log").write_text(f"... {secret} ...")
    hits = find({secret}, [tmp_path], {"output": "nothing here"})
    assert sorted(Path(p).name for p in hits[secret]) == ["a.parquet", "b.duckdb", "c.db", "d.log"]


@pytest.mark.e2e
def test_no_secret_or_token_reaches_a_log_file_or_table(dagbag, tmp_path, monkeypatch, capfd, caplog):
    sim = new_sim()
    try:
        creds = distinctive_credentials()
        for name in PROVIDERS:
            sim.state.credentials[name] = creds[name]
        data = tmp_path / "data"
        for k, v in harness.pipeline_env(sim, data).items():
            monkeypatch.setenv(k, v)  # the connections (AIRFLOW_CONN_*), the data dir, the rate window
        day = {"date_start": "2025-03-03", "date_end": "2025-03-03"}
        logical = dt.datetime(2025, 3, 20, tzinfo=UTC)
        for name in PROVIDERS:
            assert dagbag.dags[f"extract_{name}"].test(logical_date=logical, run_conf=day).state == "success", name
        run = dagbag.dags["warehouse"].test(logical_date=logical, run_conf={"as_of_date": harness.AS_OF_DATE})
        assert run.state == "success"
        issued = {t for name in PROVIDERS for t in sim.state.tokens[name]._tokens}
    finally:
        sim.stop()

    secret_values = {v for c in creds.values() for k, v in c.items() if k in SECRET_FIELDS}
    assert len(secret_values) == 7
    # Tokens were issued (DealPOS, Shopwave, REDEX access + refresh), so the search below means something.
    assert {t.split("-")[0] for t in issued} >= {"dp", "sw", "redex"}
    # The run really used the data: the published warehouse has every provider's rows.
    assert harness.query(config.published_db(), "SELECT count(*) FROM raw_dealpos.invoices")[0][0] > 0

    captured = capfd.readouterr()
    texts = {"stdout": captured.out, "stderr": captured.err, "log records": caplog.text}
    roots = [Path(os.environ["AIRFLOW_HOME"]), data]
    assert find(secret_values | issued, roots, texts) == {}
    # The search did look at what the run wrote: Parquet, the warehouse files, dbt's logs and artifacts.
    names = {p.name for p in data.rglob("*")}
    assert {"work.duckdb", "warehouse.duckdb", "dbt.log", "manifest.json", "_manifest.json"} <= names
    assert any(n.endswith(".parquet") for n in names)


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_without_its_airflow_connection_a_hook_has_no_credentials(provider, monkeypatch):
    for key in [k for k in os.environ if k.startswith("AIRFLOW_CONN_")]:
        monkeypatch.delenv(key)
    with pytest.raises(AirflowNotFoundException) as err:
        HOOKS[provider]().get_conn()
    assert str(err.value) == f"The conn_id `{provider}_default` isn't defined"


# --- TLS ---------------------------------------------------------------------------------------

def test_tls_is_verified_by_default_for_real_hosts():
    spec = PROVIDERS["akinon"]
    c = build_client(spec, ConnInfo(conn_id="akinon_default", host="oms.example.com", password="k"))
    assert (c.base_url, c.verify) == ("https://oms.example.com/", True)
    c = build_client(spec, ConnInfo(conn_id="akinon_default", host="https://oms.example.com", password="k"))
    assert c.verify is True
    # Turning it off takes an explicit word in the connection's extra.
    c = build_client(spec, ConnInfo(conn_id="akinon_default", host="https://oms.example.com", password="k",
                                    extra={"verify_tls": False}))
    assert c.verify is False


def test_a_self_signed_certificate_is_refused(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert), "-days", "1"], check=True, capture_output=True)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b'{"count": 0, "next": null, "results": []}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"https://127.0.0.1:{server.server_address[1]}"
    retry = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.001, read_timeout=5)
    try:
        strict = build_client(PROVIDERS["akinon"], ConnInfo("akinon_default", host, password="k"), retry=retry)
        with pytest.raises(ApiError) as err:
            strict.request_json("GET", "/api/v1/oms/invoices/")
        assert str(err.value) == ("connection 'akinon_default': GET /api/v1/oms/invoices/ still failing after 2 "
                                  "attempts (last: connection error)")
        lax = build_client(PROVIDERS["akinon"], ConnInfo("akinon_default", host, password="k",
                                                          extra={"verify_tls": "false"}), retry=retry)
        assert lax.request_json("GET", "/api/v1/oms/invoices/")[0] == {"count": 0, "next": None, "results": []}
    finally:
        server.shutdown()
        server.server_close()


# --- SQL injection -------------------------------------------------------------------------------

INJECTIONS = ["'); DROP TABLE raw_fake.things; --", "1'; DELETE FROM meta.load_audit; --",
              'x" OR "1"="1', "Robert'); DROP TABLE meta.quarantine;--"]


def test_api_data_that_looks_like_sql_loads_as_data(tmp_path):
    stream = Stream(name="things", path="/things/", primary_key=("id",),
                    schema=Schema.of(Field("id", required=True), Field("amount", "decimal(18,2)", required=True),
                                     Field("note")))
    spec = ProviderSpec(name="fake", title="Fake", conn_type="fake", auth=lambda c, s: None, streams=(stream,))
    records = [{"id": v, "amount": "1.00", "note": v} for v in INJECTIONS]
    records.append({"id": "q1", "amount": "0; DROP TABLE raw_fake.things; --"})  # quarantined, as data too
    client = FakeClient(lambda path, params: {"results": records})
    landing, db = tmp_path / "landing", tmp_path / "work.duckdb"
    for _ in range(2):  # twice: the second load merges by those keys (DELETE ... USING, INSERT BY NAME)
        run_stream(client, spec, stream, start=T0, end=T1, landing=landing, window_label="2025-03-01", run_id="t")
        audits = load_all(db, landing, [spec], run_id="t")
    assert [(a["rows_inserted"], a["rows_updated"], a["rows_quarantined"]) for a in audits] == [(0, 4, 1)]
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT id, amount, note FROM raw_fake.things ORDER BY id").fetchall() == sorted(
            (v, Decimal("1.00"), v) for v in INJECTIONS)
        assert con.execute("SELECT reason FROM meta.quarantine").fetchall() == [
            ("field 'amount': '0; DROP TABLE raw_fake.things; --' is not a number",)] * 2
        assert con.execute("SELECT count(*) FROM meta.load_audit").fetchone()[0] == 2
        assert json.loads(con.execute("SELECT raw FROM meta.quarantine LIMIT 1").fetchone()[0])["id"] == "q1"


# --- read-only published warehouse ---------------------------------------------------------------

@pytest.mark.e2e
@pytest.mark.parametrize("statement", [
    "CREATE TABLE marts.intruder (x INTEGER)",
    "INSERT INTO meta.load_audit (run_id) VALUES ('intruder')",
    "UPDATE marts.fct_invoices SET total_amount = 0",
    "DELETE FROM marts.fct_invoices",
    "DROP TABLE marts.fct_invoices",
])
def test_the_published_warehouse_opened_read_only_refuses_writes(clean_run, statement):
    before = harness.sha256(clean_run.published)
    with duckdb.connect(str(clean_run.published), read_only=True) as con:
        with pytest.raises(duckdb.InvalidInputException, match="attached in read-only mode"):
            con.execute(statement)
        assert con.execute("SELECT count(*) FROM marts.fct_invoices").fetchone()[0] == len(
            clean_run.snapshot["marts.fct_invoices"])
    assert harness.sha256(clean_run.published) == before
