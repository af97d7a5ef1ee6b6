"""One warehouse for the dbt tests: every available provider extracted from the simulators, loaded,
seeded and built once per session.

Available = a simulator module exists and the provider is registered; the tests that name a provider
that is not available yet skip. The simulators run on their own server (not the shared ``sim``), so the
DealPOS rate limit budget is this fixture's alone.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from invoice_warehouse.registry import PROVIDERS
from invoice_warehouse.warehouse.dbt import run_dbt
from simulators.server import MODULES, SimServer, SimState
from simulators.world import WorldConfig
from tests.conftest import AS_OF
from tests.helpers import extract_and_load

UTC = dt.timezone.utc
ALL_PROVIDERS = ("dealpos", "idh", "shopwave", "redex", "akinon")
#: The extracted window and the day the receivables marts are built "as of" (the simulators' now).
WINDOW = (dt.datetime(2025, 3, 1, tzinfo=UTC), dt.datetime(2025, 3, 15, tzinfo=UTC))
AS_OF_DATE = AS_OF.date().isoformat()


@dataclass
class Warehouse:
    db: Path
    data_dir: Path
    providers: tuple[str, ...]
    sim: SimServer
    run_results: dict[str, Any]

    @contextmanager
    def env(self) -> Iterator[None]:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("IWH_DATA_DIR", str(self.data_dir))
            yield

    def dbt(self, args: Sequence[str], *, db: Path | None = None, as_of_date: str = AS_OF_DATE,
            sync_tables: bool = False) -> str:
        """``dbt <args>`` on this warehouse (or on ``db``, a copy of it) with as_of_date pinned;
        ``sync_tables`` as the daily build sets it (run_dbt)."""
        with self.env():
            return run_dbt(list(args), work_db=db or self.db, vars_={"as_of_date": as_of_date},
                           sync_tables=sync_tables)

    def copy(self, tmp: Path) -> Path:
        """A copy of the built warehouse file. Same file name: the views name their catalog by it."""
        target = tmp / self.db.name
        shutil.copy(self.db, target)
        return target


def available_providers() -> tuple[str, ...]:
    return tuple(p for p in ALL_PROVIDERS if p in MODULES and p in PROVIDERS)


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory) -> Iterator[Warehouse]:
    root = tmp_path_factory.mktemp("dbt-warehouse")
    providers = available_providers()
    server = SimServer(SimState(WorldConfig(seed=7, as_of=AS_OF))).start()
    try:
        wh = Warehouse(db=root / "work.duckdb", data_dir=root / "data", providers=providers, sim=server,
                       run_results={})
        os.makedirs(wh.data_dir, exist_ok=True)
        with wh.env():
            extract_and_load(server, list(providers), *WINDOW, root)
        # One `dbt build` (seeds, models, tests, unit tests in DAG order): what pipeline.build's
        # `dbt seed` + `dbt build --exclude resource_type:seed` do, in one invocation.
        wh.dbt(["build"])
        results = wh.data_dir / "dbt" / "target" / "run_results.json"
        wh.run_results = json.loads(results.read_text())
        yield wh
    finally:
        server.stop()
