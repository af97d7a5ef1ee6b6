"""Shared fixtures: simulators on a free port, a fixed simulated 'now', temp data directories."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Airflow reads its home when first imported: give the test session its own, before anything imports it.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="iwh-airflow-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ.setdefault("IWH_DATA_DIR", tempfile.mkdtemp(prefix="iwh-data-"))

from simulators.server import SimServer, SimState  # noqa: E402 - after AIRFLOW_HOME is set
from simulators.world import WorldConfig  # noqa: E402

#: The simulators' "now" in tests: fixed, so every expected number is exact and repeatable.
AS_OF = dt.datetime(2025, 3, 15, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="session")
def sim() -> SimServer:
    """Shared simulators (no faults). Tests that change faults use ``fresh_sim``."""
    server = SimServer(SimState(WorldConfig(seed=7, as_of=AS_OF))).start()
    yield server
    server.stop()


@pytest.fixture()
def fresh_sim() -> SimServer:
    server = SimServer(SimState(WorldConfig(seed=7, as_of=AS_OF))).start()
    yield server
    server.stop()


@pytest.fixture()
def data_dir(tmp_path, monkeypatch):
    """IWH_DATA_DIR in a temp folder (landing, warehouse files, dbt artifacts)."""
    monkeypatch.setenv("IWH_DATA_DIR", str(tmp_path / "data"))
    os.makedirs(tmp_path / "data", exist_ok=True)
    return tmp_path / "data"


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata database for dag.test() (once per session)."""
    home = Path(os.environ["AIRFLOW_HOME"])
    if not (home / ".migrated").exists():
        subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], check=True,
                       capture_output=True, env=os.environ.copy())
        (home / ".migrated").touch()
    return home


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag
