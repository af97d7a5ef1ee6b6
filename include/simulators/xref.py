"""Generate the dbt seed ``customer_xref``: one business customer's local id at every provider.

The simulators share one pool of business customers (``World.N_CUSTOMERS``); each provider knows
customer ``n`` by its own id (``<module>.customer_id(n)``: a GUID at DealPOS, a store id at IDH and
Shopwave, a registration number at REDEX, an OMS customer id at Akinon). The warehouse maps those ids
to one ``customer_key`` (``C001`` ...) through this seed, so the same customer lines up across providers.

    python -m simulators.xref            # rewrites dbt_project/seeds/customer_xref.csv
    python -m simulators.xref --check    # exits 1 when the file is out of date (CI)

Every simulator module present is included (``simulators.server.MODULES``): adding a provider's
simulator and re-running this script is all the seed needs.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import io
import sys
from pathlib import Path

from simulators.server import MODULES
from simulators.world import World, customer_map

COLUMNS = ("provider", "customer_id", "customer_key", "customer_name")
SEED_PATH = Path(__file__).resolve().parents[2] / "dbt_project" / "seeds" / "customer_xref.csv"


def rows(modules: tuple[str, ...] = MODULES, n_customers: int = World.N_CUSTOMERS) -> list[dict[str, str]]:
    """One row per (provider, business customer), ordered by provider then customer key."""
    people = customer_map(n_customers)
    out = []
    for name in sorted(modules):
        module = importlib.import_module(f"simulators.{name}")
        for n, person in enumerate(people, start=1):
            out.append({"provider": name, "customer_id": str(module.customer_id(n)), **person})
    return out


def render(data: list[dict[str, str]]) -> str:
    """The CSV text of the seed (``\\n`` line ends, a header row)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(data)
    return buf.getvalue()


def write(path: Path = SEED_PATH) -> Path:
    """Write the seed for every simulator module present; returns its path."""
    path.write_text(render(rows()), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the seed file is out of date")
    parser.add_argument("--path", type=Path, default=SEED_PATH)
    args = parser.parse_args(argv)
    if args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.exists() else ""
        if current != render(rows()):
            print(f"{args.path} is out of date: run python -m simulators.xref", file=sys.stderr)
            return 1
        return 0
    print(write(args.path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
