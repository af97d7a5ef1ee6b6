"""The provider registry: every provider module, in one list. Adding a provider = one name here."""

from __future__ import annotations

import importlib

from invoice_warehouse.engine.hook import ProviderHook
from invoice_warehouse.engine.spec import ProviderSpec

#: provider name -> hook class name in invoice_warehouse.providers.<name>
PROVIDER_HOOKS = {
    "dealpos": "DealposHook",
    "idh": "IdhHook",
    "shopwave": "ShopwaveHook",
    "redex": "RedexHook",
    "akinon": "AkinonHook",
}


def _load() -> dict[str, type[ProviderHook]]:
    hooks = {}
    for name, cls in PROVIDER_HOOKS.items():
        try:
            module = importlib.import_module(f"invoice_warehouse.providers.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"invoice_warehouse.providers.{name}":
                continue  # provider not built yet
            raise
        hooks[name] = getattr(module, cls)
    return hooks


HOOKS: dict[str, type[ProviderHook]] = _load()
PROVIDERS: dict[str, ProviderSpec] = {name: h.spec for name, h in HOOKS.items()}


def get(name: str) -> ProviderSpec:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise KeyError(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}") from None
