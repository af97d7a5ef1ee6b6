"""Airflow provider registration (entry point ``apache_airflow_provider``).

Each provider hook becomes a connection type with labelled fields in the Airflow UI's connection form.

Airflow calls ``get_provider_info()`` while it initialises, which may happen *during* the import of
our own hook modules (they import ``airflow.sdk``): so, like Airflow's own providers, the info is a
generated static file (``provider_info.json``), rebuilt from the specs with
``python -m invoice_warehouse.provider_info --write``; a test keeps the two identical.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from invoice_warehouse import __version__

INFO_FILE = Path(__file__).with_name("provider_info.json")


def build_provider_info() -> dict[str, Any]:
    """The provider info computed from the registry (imports the hooks: never call during Airflow init)."""
    from invoice_warehouse.registry import HOOKS

    return {
        "package-name": "invoice-warehouse",
        "name": "Invoice Warehouse",
        "description": "Hooks for DealPOS, IDH API Manager, Shopwave, REDEX and Akinon OMS.",
        "versions": [__version__],
        "connection-types": [
            hook.spec.connection_type_info(f"{hook.__module__}.{hook.__name__}") for hook in HOOKS.values()
        ],
    }


def get_provider_info() -> dict[str, Any]:
    return json.loads(INFO_FILE.read_text())


if __name__ == "__main__":
    if "--write" in sys.argv:
        INFO_FILE.write_text(json.dumps(build_provider_info(), indent=2) + "\n")
        print(f"wrote {INFO_FILE}")
    else:
        print(json.dumps(build_provider_info(), indent=2))
