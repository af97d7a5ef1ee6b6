"""Processes killed with SIGKILL at the worst moments, then the run retried: nothing half-written is
ever read, the published warehouse never changes until a complete build replaces it, and the retried
run publishes exactly the clean run's warehouse.

The scenario starts from a copy of the clean run (so a published warehouse exists) and runs the same
three days again, as Airflow would with task retries: extraction killed twice (before a partition's
manifest is renamed into place; in the middle of a stream), a load in between, extraction retried; the
load killed between its DELETE and INSERT; dbt killed while it builds the marts; publish killed
before its rename; each step retried. Each kill is a real SIGKILL of a subprocess running the pipeline
(crashpoints: invoice_warehouse/engine/crash.py; dbt: the process group is killed from outside).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from invoice_warehouse import config, pipeline
from invoice_warehouse.engine.manifest import MANIFEST, read_manifests
from invoice_warehouse.registry import PROVIDERS
from tests.reliability import harness

pytestmark = pytest.mark.e2e

MART_STARTED = "START sql table model marts."


def landing_files(landing: Path) -> dict[str, list[str]]:
    """Per partition dir (relative), the file names in it."""
    return {str(p.relative_to(landing)): sorted(f.name for f in p.iterdir())
            for p in sorted(landing.glob("*/*/window=*"))}


def unreferenced_data_files(landing: Path) -> list[str]:
    """Data files that no committed manifest names (written by an extraction that never committed)."""
    out = []
    for part in sorted(landing.glob("*/*/window=*")):
        mf = part / MANIFEST
        named = set()
        if mf.exists():
            m = json.loads(mf.read_text())
            named = {m["files"]["data"], m["files"].get("quarantine")}
        out += [str(f.relative_to(landing)) for f in sorted(part.glob("data-*.parquet")) if f.name not in named]
    return out


def unreadable_committed_files(landing: Path) -> list[str]:
    """Committed partitions whose data file is missing, unreadable, or not the manifest's row count."""
    bad = []
    for name, spec in PROVIDERS.items():
        for s in spec.streams:
            for m in read_manifests(landing, name, s.name):
                try:
                    if pq.read_metadata(m["data_path"]).num_rows != m["records"]:
                        bad.append(m["data_path"])
                except (OSError, pa.ArrowInvalid):
                    bad.append(m["data_path"])
    return bad


def manifests(landing: Path) -> dict[str, str]:
    """partition -> committed batch id, for every committed partition."""
    return {f"{m['provider']}/{m['entity']}/window={m['window']}": m["batch_id"]
            for name, spec in PROVIDERS.items() for s in spec.streams
            for m in read_manifests(landing, name, s.name)}


def first_partition() -> str:
    """The partition the extraction commits first: first provider, first stream, first day."""
    spec = next(iter(PROVIDERS.values()))
    stream = spec.streams[0]
    label = harness.START.date().isoformat() if stream.window else \
        f"sweep-{(harness.END - dt.timedelta(days=1)).date().isoformat()}"
    return f"{spec.name}/{stream.name}/window={label}"


def wait_until_gone(pgid: int, timeout: float = 60) -> None:
    """Wait until no live process of the group is left (a killed dbt, reparented when its parent died,
    holds the warehouse file's lock until the kernel has torn it down)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append(stat.parent.name)
        if not alive:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes of group {pgid} still alive after SIGKILL: {alive}")


def kill_dbt_mid_build(sim, data_dir: Path) -> dict[str, Any]:
    """Start the dbt_build step; SIGKILL its process group (the step and dbt) as soon as dbt starts
    writing the first mart table (staging and intermediate are built by then, the marts are not)."""
    log = data_dir / "dbt" / "logs" / "dbt.log"
    offset = log.stat().st_size if log.exists() else 0
    proc = harness.start_step("build", sim, data_dir)
    seen, text = False, ""
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if log.exists():
                with open(log, encoding="utf-8", errors="replace") as fh:
                    fh.seek(offset)
                    text = fh.read()
                if MART_STARTED in text:
                    seen = True
                    break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        if proc.stdout:
            proc.stdout.close()
        wait_until_gone(proc.pid)
    with open(log, encoding="utf-8", errors="replace") as fh:
        fh.seek(offset)
        text = fh.read()
    after = text.split(MART_STARTED, 1)[1] if MART_STARTED in text else ""
    return {"returncode": proc.returncode, "mart_seen": seen, "finished": "Done. PASS=" in after}


@pytest.fixture(scope="module")
def crashes(rel_sim, clean_run, tmp_path_factory) -> dict[str, Any]:
    """Run the whole crash-and-retry scenario once; the tests below check what each step left behind."""
    data = clean_run.copy(tmp_path_factory.mktemp("crashes") / "data")
    obs: dict[str, Any] = {}
    with harness.running_pipeline(rel_sim, data):
        landing, work, published = config.landing_dir(), config.work_db(), config.published_db()
        obs["published_sha"] = harness.sha256(published)
        obs["first_partition"] = first_partition()

        # 1. extraction killed after a data file is renamed into place, before its manifest is.
        before = manifests(landing)
        r = harness.run_step("extract", rel_sim, data, crash_at="landing.before_manifest", args=["crash-1"])
        obs["extract1"] = {"returncode": r.returncode, "manifests_before": before, "manifests": manifests(landing),
                           "unreferenced": unreferenced_data_files(landing),
                           "unreadable_committed": unreadable_committed_files(landing)}

        # 2. extraction killed in the middle of a stream, a page written into the partition's temp file.
        r = harness.run_step("extract", rel_sim, data, crash_at="extract.after_page@10", args=["crash-2"])
        temps = sorted(str(p.relative_to(landing)) for p in landing.glob("*/*/window=*/.*.tmp"))
        unreadable = []
        for t in temps:
            try:
                pq.ParquetFile(landing / t)
            except (pa.ArrowInvalid, OSError):
                unreadable.append(t)
        committed = manifests(landing)
        obs["extract2"] = {"returncode": r.returncode, "temps": temps, "unreadable": unreadable,
                           "manifests": committed, "unreadable_committed": unreadable_committed_files(landing),
                           "recommitted": sorted(k for k, b in committed.items() if b != before.get(k))}

        # 3. the warehouse DAG loads in between (the entities that did finish emitted their Assets).
        between = pipeline.load("between")
        obs["between"] = {"audits": between, "manifests": committed,
                          "loaded": set(harness.query(work, "SELECT provider || '/' || entity || '/window=' || "
                                                            "window_label, batch_id FROM meta.loaded_batches")),
                          "raw": harness.snapshot(work, harness.RAW)}

        # 4. extraction retried (Airflow's task retry): every partition committed again.
        harness.extract("retry")
        obs["retry_extract"] = {"unreferenced": unreferenced_data_files(landing)}

        # 5. the load killed between DELETE and INSERT of its first merge.
        before_load = harness.snapshot(work, harness.RAW_AND_META, bookkeeping=True)
        r = harness.run_step("load", rel_sim, data, crash_at="load.between_delete_and_insert", args=["crash-3"])
        obs["load"] = {"returncode": r.returncode, "before": before_load,
                       "after": harness.snapshot(work, harness.RAW_AND_META, bookkeeping=True),
                       "published_sha": harness.sha256(published)}

        # 6. the load retried.
        obs["retry_load"] = {"audits": pipeline.load("retry"), "raw": harness.snapshot(work, harness.RAW)}

        # 7. dbt killed while it builds the marts; 8. the build retried.
        obs["dbt"] = kill_dbt_mid_build(rel_sim, data)
        obs["dbt"]["published_sha"] = harness.sha256(published)
        obs["dbt"]["work_tables"] = harness.query(
            work, "SELECT count(*) FROM information_schema.tables WHERE table_schema LIKE 'raw\\_%' ESCAPE '\\'")
        harness.build()

        # 9. publish killed before its rename; 10. publish retried.
        r = harness.run_step("publish", rel_sim, data, crash_at="publish.before_rename")
        obs["publish"] = {"returncode": r.returncode, "published_sha": harness.sha256(published),
                          "published": harness.snapshot(published),
                          "temps": sorted(p.name for p in published.parent.glob(f".{published.name}.*.tmp"))}
        pipeline.publish_warehouse()
        obs["final"] = {"published_sha": harness.sha256(published), "published": harness.snapshot(published),
                        "run_ids": harness.query(published, "SELECT DISTINCT _run_id FROM raw_dealpos.invoices")}
    return obs


def test_extraction_killed_before_the_manifest_keeps_the_committed_partition(crashes):
    e = crashes["extract1"]
    assert e["returncode"] == -signal.SIGKILL
    part = crashes["first_partition"]
    # Nothing was committed: every manifest still names the batch of the clean run, whose file is there.
    assert e["manifests"] == e["manifests_before"]
    assert e["unreadable_committed"] == []
    # The killed extraction's data file was renamed into place, but no manifest names it: never read.
    assert len(e["unreferenced"]) == 1 and e["unreferenced"][0].startswith(part + "/data-")


def test_extraction_killed_mid_stream_leaves_only_an_unreferenced_temp_file(crashes):
    e = crashes["extract2"]
    assert e["returncode"] == -signal.SIGKILL
    # One half-written Parquet file (no footer: unreadable) under a dot-name no manifest can name.
    assert len(e["temps"]) == 1 and e["unreadable"] == e["temps"]
    assert e["unreadable_committed"] == []
    assert os.path.basename(e["temps"][0]).startswith(".data-")
    # The partitions finished before the kill were committed (and replaced the older ones whole).
    assert crashes["first_partition"] in e["recommitted"]


def test_a_load_between_the_crashes_reads_only_committed_partitions(crashes, clean_run):
    b = crashes["between"]
    # The load succeeded, so it read no half-written file (read_parquet fails on one). It loaded one
    # batch per partition the killed run had committed, every committed batch is now loaded, and the
    # killed runs' files (the temp file's batch) are not.
    assert sum(a["batches"] for a in b["audits"]) == len(crashes["extract2"]["recommitted"]) > 0
    assert set(b["manifests"].items()) <= b["loaded"]
    temp_batch = os.path.basename(crashes["extract2"]["temps"][0]).removeprefix(".data-").split(".")[0]
    assert temp_batch not in {batch for _, batch in b["loaded"]}
    # Its raw tables hold the clean data: nothing lost, nothing doubled.
    assert b["raw"] == {t: rows for t, rows in clean_run.snapshot.items() if t.startswith("raw_")}


def test_the_retried_extraction_commits_every_partition(crashes):
    assert crashes["retry_extract"]["unreferenced"] == []


def test_load_killed_mid_transaction_leaves_the_work_db_as_it_was(crashes, clean_run):
    e = crashes["load"]
    assert e["returncode"] == -signal.SIGKILL
    # Every raw table (with its bookkeeping columns), meta.loaded_batches, meta.load_audit: unchanged.
    assert harness.differences(e["after"], e["before"]) == {}
    assert e["after"] == e["before"]
    assert e["published_sha"] == crashes["published_sha"]
    # The retried load merges the retry's batches: the raw tables are the clean run's, row for row.
    audits = crashes["retry_load"]["audits"]
    assert sum(a["rows_inserted"] for a in audits) == 0  # same records: updates only, nothing new
    assert sum(a["rows_updated"] for a in audits) > 0
    assert crashes["retry_load"]["raw"] == {t: r for t, r in clean_run.snapshot.items() if t.startswith("raw_")}


def test_dbt_killed_mid_build_leaves_the_published_warehouse_untouched(crashes):
    e = crashes["dbt"]
    assert e["mart_seen"] and not e["finished"]  # killed while dbt was building the marts
    assert e["returncode"] == -signal.SIGKILL
    assert e["published_sha"] == crashes["published_sha"]
    assert e["work_tables"][0][0] == sum(len(s.streams) for s in PROVIDERS.values())


def test_publish_killed_before_the_rename_leaves_the_published_warehouse_untouched(crashes, clean_run):
    e = crashes["publish"]
    assert e["returncode"] == -signal.SIGKILL
    assert e["published_sha"] == crashes["published_sha"]
    assert e["published"] == clean_run.snapshot
    assert len(e["temps"]) == 1  # the killed copy, under a temp name no reader opens


def test_the_retried_run_publishes_the_clean_warehouse(crashes, clean_run):
    f = crashes["final"]
    assert f["published_sha"] != crashes["published_sha"]  # a new file was swapped in ...
    assert f["run_ids"] == [("retry",)]  # ... built from the retried extraction
    harness.assert_same_warehouse(f["published"], clean_run.snapshot)
