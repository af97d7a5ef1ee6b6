"""Airflow provider registration (entry point ``apache_airflow_provider``).

Each provider hook becomes a connection type with labelled fields in the Airflow UI's connection form.
"""

from __future__ import annotations

from typing import Any

from invoice_warehouse import __version__


def get_provider_info() -> dict[str, Any]:
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
