"""Run dbt (dbt-duckdb) against the working warehouse file, as a subprocess of the task."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from invoice_warehouse import config

log = logging.getLogger(__name__)


class DbtError(RuntimeError):
    pass


def dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def run_dbt(args: Sequence[str], *, work_db: Path | str | None = None, vars_: dict | None = None) -> str:
    """``dbt <args>`` on the working warehouse; returns the output, raises DbtError with its tail."""
    import json

    project = config.dbt_project_dir()
    target_dir = config.data_dir() / "dbt" / "target"
    env = {**os.environ,
           "IWH_WAREHOUSE_PATH": str(work_db or config.work_db()),
           "DBT_LOG_PATH": str(config.data_dir() / "dbt" / "logs"),
           "DBT_TARGET_PATH": str(target_dir),
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    cmd = [dbt_executable(), *args, "--project-dir", str(project), "--profiles-dir", str(project)]
    if vars_:
        cmd += ["--vars", json.dumps(vars_)]
    log.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=project)
    out = proc.stdout + proc.stderr
    for line in out.splitlines():
        log.info("dbt | %s", line)
    if proc.returncode != 0:
        tail = "\n".join(out.splitlines()[-40:])
        raise DbtError(f"dbt {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")
    return out
