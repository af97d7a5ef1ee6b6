"""docker-compose.yaml and Dockerfile, checked as files (no Docker engine needed): the official Airflow 3
layout with the CeleryExecutor, health checks, the shared data volume, the init service's pools, and an
image that installs the same pinned requirements.txt as ``make install``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from invoice_warehouse import local_airflow as la

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker-1", "airflow-worker-2", "airflow-init"}
LONG_RUNNING = {"postgres", "redis", "simulators"} | (AIRFLOW_SERVICES - {"airflow-init"})


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            out[name.lower()] = version
    return out


def test_services(services):
    assert set(services) == {"postgres", "redis", "simulators", "flower"} | AIRFLOW_SERVICES
    assert services["flower"]["profiles"] == ["flower"]  # optional, as in the official file
    workers = [s for s in services if s.startswith("airflow-worker")]
    assert len(workers) >= 2
    for w in workers:
        assert services[w]["command"] == "celery worker"
    commands = {name: services[name]["command"] for name in AIRFLOW_SERVICES - {"airflow-init"}}
    assert commands == {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                        "airflow-dag-processor": "dag-processor", "airflow-triggerer": "triggerer",
                        "airflow-worker-1": "celery worker", "airflow-worker-2": "celery worker"}
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")


def test_celery_executor_and_one_configuration(services):
    envs = [services[s]["environment"] for s in AIRFLOW_SERVICES | {"flower"}]
    for env in envs:
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:@redis:6379/0"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:airflow@postgres/")
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://airflow:airflow@postgres/")
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["IWH_DATA_DIR"] == "/opt/iwh/data"
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/iwh/dags"
    # Every component shares the same settings (one anchor): same JWT secret, same Fernet key ...
    shared = {k: v for k, v in envs[0].items() if k.startswith("AIRFLOW__")}
    for env in envs[1:]:
        assert {k: v for k, v in env.items() if k.startswith("AIRFLOW__")} == shared
    assert "8080:8080" in services["airflow-apiserver"]["ports"]


def test_every_airflow_setting_is_a_real_option(services):
    """No typo in a section or key: each AIRFLOW__SECTION__KEY is an option this Airflow knows (the
    [celery] section belongs to the Celery provider, which the image has and this venv has not: its
    options are checked against the provider's documented names)."""
    from airflow.configuration import conf

    celery = {"broker_url", "result_backend", "worker_concurrency"}
    known = {section: set(spec["options"]) for section, spec in conf.configuration_description.items()}
    keys = {k for s in AIRFLOW_SERVICES for k in services[s]["environment"] if k.startswith("AIRFLOW__")}
    assert len(keys) >= 15
    for key in sorted(keys):
        _, section, option = (p.lower() for p in key.split("__", 2))
        assert option in (celery if section == "celery" else known.get(section, ())), key


def test_health_checks(services):
    for name in LONG_RUNNING | {"flower"}:
        check = services[name].get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert check.get("interval") and check.get("retries"), name
    assert "http://localhost:8080/api/v2/version" in services["airflow-apiserver"]["healthcheck"]["test"]
    assert "http://localhost:8974/health" in services["airflow-scheduler"]["healthcheck"]["test"]
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
    assert "DagProcessorJob" in services["airflow-dag-processor"]["healthcheck"]["test"][1]
    assert "TriggererJob" in services["airflow-triggerer"]["healthcheck"]["test"][1]
    assert "/_sim/health" in services["simulators"]["healthcheck"]["test"][-1]
    for w in ("airflow-worker-1", "airflow-worker-2"):
        assert "inspect ping" in services[w]["healthcheck"]["test"][1]


def test_start_order(services):
    for name in AIRFLOW_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["postgres"] == {"condition": "service_healthy"}
        assert deps["redis"] == {"condition": "service_healthy"}
        if name != "airflow-init":
            assert deps["airflow-init"] == {"condition": "service_completed_successfully"}
    assert services["airflow-init"]["depends_on"]["simulators"] == {"condition": "service_healthy"}
    for w in ("airflow-worker-1", "airflow-worker-2"):
        assert services[w]["depends_on"]["simulators"] == {"condition": "service_healthy"}


def test_shared_volume_for_landing_and_warehouse(compose, services):
    assert set(compose["volumes"]) == {"postgres-db-volume", "iwh-data", "airflow-logs", "airflow-auth"}
    for name in AIRFLOW_SERVICES:
        assert "iwh-data:/opt/iwh/data" in services[name]["volumes"], name
        assert "airflow-logs:/opt/airflow/logs" in services[name]["volumes"], name
    assert services["postgres"]["volumes"] == ["postgres-db-volume:/var/lib/postgresql/data"]


def test_init_service_creates_pools_and_connections(services):
    init = services["airflow-init"]
    script = init["command"][1]
    lines = [ln.strip() for ln in script.splitlines() if ln.strip()]
    assert lines[0] == "set -euo pipefail"
    assert lines[1] == "airflow db migrate"
    writer = la.pools()["duckdb_writer"]
    assert lines[2] == f'airflow pools set duckdb_writer {writer["slots"]} "{writer["description"]}"'
    assert writer["slots"] == 1
    assert lines[3] == 'python -m invoice_warehouse.local_airflow --setup-only --sim-url "$${IWH_SIM_URL}"'
    assert init["environment"]["IWH_SIM_URL"] == "${IWH_SIM_URL-http://simulators:8900}"
    assert init["entrypoint"] == "/bin/bash"
    # The simulators listen where the connections will point.
    sim = services["simulators"]
    assert sim["command"] == ["python", "-m", "simulators.server", "--host", "0.0.0.0", "--port", "8900"]
    assert sim["ports"] == ["8900:8900"]


def test_one_image_built_from_the_dockerfile(services):
    images = {services[s]["image"] for s in AIRFLOW_SERVICES | {"simulators", "flower"}}
    assert images == {"${IWH_IMAGE:-invoice-warehouse:latest}"}
    for s in AIRFLOW_SERVICES | {"simulators"}:
        assert services[s]["build"] == "."


def test_dockerfile_installs_the_pinned_requirements():
    text = (ROOT / "Dockerfile").read_text()
    instructions = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    base = re.fullmatch(r"FROM apache/airflow:(\S+)-python(\S+)", instructions[0])
    assert base, instructions[0]
    assert base.group(1) == pins()["apache-airflow"]  # the image's Airflow is the pinned one
    assert base.group(2) == "3.11"
    assert "COPY --chown=airflow:0 requirements.txt /opt/iwh/requirements.txt" in text
    assert "RUN pip install -r /opt/iwh/requirements.txt" in text
    assert "RUN pip install --no-deps -e /opt/iwh" in text  # the project, exactly as `make install`
    assert text.index("pip install -r") < text.index("COPY --chown=airflow:0 . /opt/iwh")
    assert "IWH_DATA_DIR=/opt/iwh/data" in text and "AIRFLOW__CORE__DAGS_FOLDER=/opt/iwh/dags" in text
    makefile = (ROOT / "Makefile").read_text()
    assert "$(PIP) install --quiet -r requirements.txt" in makefile
    assert "$(PIP) install --quiet --no-deps -e ." in makefile


def test_dockerignore_keeps_local_state_out_of_the_image():
    ignored = {ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
               if ln.strip() and not ln.startswith("#")}
    assert {".git", ".venv", "data", ".airflow"} <= ignored
