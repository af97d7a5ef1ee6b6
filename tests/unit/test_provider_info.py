"""Each provider hook is an Airflow connection type with labelled fields in the connection form."""

from __future__ import annotations

import pytest

from invoice_warehouse.provider_info import build_provider_info, get_provider_info
from invoice_warehouse.registry import HOOKS, PROVIDERS


def test_generated_provider_info_is_current():
    # Regenerate with: .venv/bin/python -m invoice_warehouse.provider_info --write
    assert get_provider_info() == build_provider_info()


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_connection_type_registered_with_labelled_fields(name):
    from airflow.providers_manager import ProvidersManager

    spec, hook = PROVIDERS[name], HOOKS[name]
    pm = ProvidersManager()
    behaviour = pm.field_behaviours[spec.conn_type]
    assert behaviour["relabeling"] == dict(spec.relabeling)
    assert behaviour["hidden_fields"] == list(spec.hidden_fields)
    widgets = {w.field_name: w for k, w in pm.connection_form_widgets.items()
               if k.startswith(f"extra__{spec.conn_type}__")}
    assert {f.name: (f.label, f.secret) for f in spec.extra_fields} == {
        n: (w.field["schema"]["title"], w.is_sensitive) for n, w in widgets.items()}
    assert hook.conn_type == spec.conn_type
    assert hook.default_conn_name == f"{name}_default"
    assert spec.relabeling.get("host"), "every provider labels its base URL field"


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_hook_test_connection_against_the_simulator(name, sim, monkeypatch):
    import json

    from tests.helpers import conn_info

    info = conn_info(sim, name)
    monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}_DEFAULT", json.dumps({
        "conn_type": PROVIDERS[name].conn_type, "host": info.host, "login": info.login,
        "password": info.password, "extra": dict(info.extra)}))
    ok, message = HOOKS[name]().test_connection()
    assert (ok, message) == (True, f"Connected to {PROVIDERS[name].title}")

    monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}_DEFAULT", json.dumps({
        "conn_type": PROVIDERS[name].conn_type, "host": info.host, "login": info.login,
        "password": "wrong-secret-value", "extra": dict(info.extra)}))
    ok, message = HOOKS[name]().test_connection()
    assert ok is False
    assert f"connection '{name}_default'" in message
    assert "wrong-secret-value" not in message
