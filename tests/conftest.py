"""Shared fixtures: simulators on a free port, a fixed simulated 'now', temp data directories."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from simulators.server import SimServer, SimState
from simulators.world import WorldConfig

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
