"""One pipeline step as its own process, so that a crashpoint (IWH_CRASH_AT) can SIGKILL it:

    python -m tests.reliability.driver extract <run_id> [<start> <end>]
    python -m tests.reliability.driver load <run_id>
    python -m tests.reliability.driver build
    python -m tests.reliability.driver publish

The same functions the DAG tasks call (invoice_warehouse.pipeline), with the connections read by the
hooks from ``AIRFLOW_CONN_*`` and the data dir from ``IWH_DATA_DIR`` (set by tests/reliability/harness.py).
The result is printed as one JSON line.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

from invoice_warehouse import pipeline
from tests.reliability import harness


def main(argv: list[str]) -> int:
    step, rest = argv[0], argv[1:]
    result: object
    if step == "extract":
        start, end = harness.START, harness.END
        if len(rest) >= 3:
            start = dt.datetime.fromisoformat(rest[1]).replace(tzinfo=harness.UTC)
            end = dt.datetime.fromisoformat(rest[2]).replace(tzinfo=harness.UTC)
        result = harness.extract(rest[0], start, end)
    elif step == "load":
        result = pipeline.load(rest[0])
    elif step == "build":
        harness.build()
        result = "built"
    elif step == "publish":
        result = pipeline.publish_warehouse()
    else:
        raise SystemExit(f"unknown step {step!r}")
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
