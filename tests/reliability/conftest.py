"""Fixtures of the reliability tests: a clean simulator of their own, and one clean run to compare with.

``clean_run`` is the yardstick: every provider in the registry, three days, extracted, loaded, built
and published with no fault at all. Every scenario (faults, crashes, re-runs, overlapping backfills,
a build under readers) must end with a warehouse equal to it, row for row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from simulators.server import SimServer, SimState
from simulators.world import WorldConfig
from tests.conftest import AS_OF
from tests.reliability import harness


def new_sim() -> SimServer:
    server = SimServer(SimState(WorldConfig(seed=7, as_of=AS_OF))).start()
    harness.scale_rate_limit(server)
    return server


@pytest.fixture(scope="session")
def rel_sim():
    """Fault-free simulators for the reliability tests (tests that add faults start their own)."""
    server = new_sim()
    yield server
    server.stop()


@dataclass(frozen=True)
class CleanRun:
    data_dir: Path
    published: Path
    snapshot: dict[str, list[tuple]]
    extracted: list[dict]

    @property
    def marts(self) -> dict[str, list[tuple]]:
        return harness.marts(self.snapshot)

    def copy(self, dst: Path) -> Path:
        """A private copy of this run's data dir (the state right after one clean run)."""
        return harness.copy_data_dir(self.data_dir, dst)


@pytest.fixture(scope="session")
def clean_run(rel_sim, tmp_path_factory) -> CleanRun:
    data = tmp_path_factory.mktemp("clean") / "data"
    with harness.running_pipeline(rel_sim, data):
        extracted = harness.extract("clean")
        harness.warehouse("clean")
        published = harness.published()
    snap = harness.snapshot(published)
    # The yardstick holds real data in every layer (a comparison of empty tables would prove nothing).
    assert snap["marts.fct_invoices"] and snap["raw_dealpos.invoices"] and snap["raw_akinon.orders"]
    return CleanRun(data, published, snap, extracted)
