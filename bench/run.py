"""``make bench``: the extractor, the loader and dbt against the simulators, and dlt as a peer.

    .venv/bin/python bench/run.py            # default scales (10k, 100k invoices), ~20 minutes
    .venv/bin/python bench/run.py --full     # adds 1M invoices, the dlt peer on the live simulator at 100k and a smaller year (~27 minutes)

Every measured step runs in a child process of its own (bench/child.py; peak RSS from ``os.wait4``); the
simulators run as the ``iwh-sim`` command in another (bench/simproc.py), with ``--latency-ms 20`` and
``--lines-per-invoice 3``; exact volumes come from ``per_day`` and the window length. What is measured:

1. extraction per provider and entity at each scale: records/s, pages/s, requests, retries, wall time
   against the floor (the larger of pages / allowed request rate and pages x latency / concurrency),
   peak RSS, Parquet MB/s, and the CPU seconds of the extractor and of the simulator during the run;
2. the DuckDB load (``load_entity``, merge by key) against ``CREATE TABLE AS SELECT * FROM read_parquet``
   of the same files;
3. the peer: Akinon invoices (100 a page, 20 ms) pulled by dlt's ``rest_api`` source into DuckDB (in its
   own venv, bench/.venv-dlt) and by this project's extractor plus load; on the live simulator and on a
   replay of the simulator's recorded pages (bench/replay.py: the same bytes at the same latency with no
   simulator CPU on the client's two cores); three rounds of ours then dlt on each, the median the result
   (``median_round``);
4. DealPOS under its rate limit with the window scaled down (engine: IWH_RATE_WINDOW_SCALE; simulator:
   faults rate_limit), against the floor, with the time of every 429;
5. a one-year backfill (extract, load, dbt build) and the daily incremental run after it; then the next
   day's run with the landing as a year of daily runs leaves it (365 daily partitions, ``HISTORY``);
6. profiles (py-spy, bench/.venv-tools) of the extractor and of the simulator, each from a run of its
   own: a sampling profiler takes CPU from the two cores, so no timed run is profiled.

Results: bench/results/<date>.md and bench/results/latest.md. Scratch data: bench/work/ (gitignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import report  # noqa: E402 - bench/ helpers, found through sys.path above
import simproc  # noqa: E402
from simproc import EPOCH, Sim, volume  # noqa: E402

PY = sys.executable
DLT_VENV = BENCH / ".venv-dlt"
TOOLS_VENV = BENCH / ".venv-tools"
DLT_REQUIREMENT = "dlt[duckdb,parquet]==1.31.0"
PYSPY_REQUIREMENT = "py-spy==0.4.1"
LATENCY_MS = 20.0
LINES = 3
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def iso_z(ts: dt.datetime) -> str:
    return ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- tools in their own venvs ---------------------------------------------------------------------------
def ensure_venv(path: Path, requirement: str) -> Path | None:
    """A venv at ``path`` with ``requirement`` (made once; never the project's venv)."""
    py = path / "bin" / "python"
    stamp = path / ".installed"
    if stamp.exists() and stamp.read_text() == requirement:
        return py
    log(f"installing {requirement} into {path.relative_to(ROOT)} (benchmark tool, not a project dependency)")
    try:
        if not py.exists():
            subprocess.run([shutil.which("python3.11") or PY, "-m", "venv", str(path)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", requirement], check=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        log(f"could not install {requirement}: {exc}")
        return None
    stamp.write_text(requirement)
    return py


# --- child processes --------------------------------------------------------------------------------------
def proc_cpu(pid: int | None) -> float:
    """User + system CPU seconds of a running process (the simulator), from /proc."""
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_probe() -> float:
    """Seconds a fixed single-threaded Python loop takes now: how fast this (shared, virtual) machine runs
    at the moment. The hypervisor's other guests can slow every process here by half without any of it
    showing as load or steal inside the guest, so the timed runs carry the probe taken just before them."""
    t0 = time.perf_counter()
    s = 0
    for i in range(10_000_000):
        s += i
    return round(time.perf_counter() - t0, 3)


def system_busy() -> float:
    """CPU seconds every process on the machine has used so far (busy jiffies of /proc/stat)."""
    try:
        f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return (sum(f) - f[3] - f[4]) / CLK_TCK  # all but idle and iowait
    except (OSError, ValueError, IndexError):
        return 0.0


class Runner:
    def __init__(self, work: Path):
        self.work = work
        self.n = 0

    def child(self, cmd: list[str], *, env: dict[str, str] | None = None, server_pid: int | None = None,
              name: str = "job", spy: Path | None = None, spy_server: Path | None = None,
              spy_gil: bool = False, timeout: float = 3600) -> dict[str, Any]:
        """Run a child, return its BENCH-RESULT plus wall, peak RSS (MB), CPU, and the server's CPU."""
        self.n += 1
        err = self.work / "logs" / f"{self.n:03d}-{name}.log"
        err.parent.mkdir(parents=True, exist_ok=True)
        server_cpu0 = proc_cpu(server_pid)
        busy0 = system_busy()
        t0 = time.monotonic()
        with open(err, "w") as fh:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=fh, text=True,
                                    env={**os.environ, **(env or {})})
            spies = []
            if spy and report.PYSPY:
                spies.append(report.spy(proc.pid, spy, gil=spy_gil))
            if spy_server and report.PYSPY and server_pid:
                spies.append(report.spy(server_pid, spy_server))
            out = proc.stdout.read() if proc.stdout else ""
            _, status, ru = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            for s in spies:
                s.terminate() if s.poll() is None else None
                s.wait()
        wall = time.monotonic() - t0
        server_cpu = proc_cpu(server_pid) - server_cpu0 if server_pid else 0.0
        # CPU that other processes on the machine (not this job, not its server) used meanwhile: with two
        # cores, anything near `wall` means the job ran on about one core.
        others = system_busy() - busy0 - (ru.ru_utime + ru.ru_stime) - server_cpu
        result: dict[str, Any] = {"other_cpu_s": round(max(0.0, others), 1),
                                  "process_wall": round(wall, 3), "rss_mb": round(ru.ru_maxrss / 1024, 1),
                                  "cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
                                  "server_cpu_s": round(proc_cpu(server_pid) - server_cpu0, 2) if server_pid else None,
                                  "log": str(err.relative_to(self.work))}
        line = next((x for x in reversed(out.splitlines()) if x.startswith("BENCH-RESULT ")), None)
        if proc.returncode != 0 or line is None:
            tail = err.read_text().strip().splitlines()[-6:]
            result["error"] = f"exit {proc.returncode}: " + " | ".join(t.strip() for t in tail)[-600:]
            log(f"  {name} FAILED: {result['error'][:300]}")
            return result
        result.update(json.loads(line[len("BENCH-RESULT "):]))
        if result.get("vm_hwm_mb"):
            # The child's own VmHWM: ru_maxrss would include this (forking) process's RSS at exec.
            result["ru_maxrss_mb"], result["rss_mb"] = result["rss_mb"], result["vm_hwm_mb"]
        return result

    def job(self, job: dict[str, Any], **kw: Any) -> dict[str, Any]:
        return self.child([PY, str(BENCH / "child.py"), json.dumps(job)], name=f"{job['mode']}-"
                          f"{job.get('provider', '')}-{job.get('stream', job.get('entity', ''))}", **kw)


# --- the phases -----------------------------------------------------------------------------------------
def providers() -> dict[str, Any]:
    from invoice_warehouse.registry import PROVIDERS

    return dict(PROVIDERS)


def floor_seconds(pages: int, concurrency: int, rate_limit: list | None) -> dict[str, float]:
    by_latency = pages * LATENCY_MS / 1000 / max(1, concurrency)
    by_rate = pages / (rate_limit[0] / rate_limit[1]) if rate_limit else 0.0
    return {"floor_s": round(max(by_latency, by_rate), 3), "floor_latency_s": round(by_latency, 3),
            "floor_rate_s": round(by_rate, 3)}


def extract_job(sim: Sim, provider: str, stream: str, start: dt.datetime, end: dt.datetime, landing: Path,
                label: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"mode": "extract", "provider": provider, "stream": stream, "conn": sim.conn(provider),
            "start": start.isoformat(), "end": end.isoformat(), "landing": str(landing),
            "label": label, "block_airflow": True, **extra}


def phase_scales(r: Runner, specs: dict[str, Any], scales: list[int], rate_scale: float,
                 only_akinon_above: int, full: bool) -> list[dict[str, Any]]:
    """Every stream of every provider at each scale (one window holding the whole volume)."""
    rows = []
    env = {"IWH_RATE_WINDOW_SCALE": str(rate_scale)}
    for n in scales:
        for provider, spec in specs.items():
            if provider != "akinon" and n > only_akinon_above:
                continue
            per_day, days = volume(n, 10_000 if provider == "akinon" else 500)
            as_of = EPOCH + dt.timedelta(days=days)
            faults = {"dealpos": {"rate_limit": [50, 180 * rate_scale]}}
            landing = r.work / "scales" / f"{provider}-{n}" / "landing"
            with Sim(latency_ms=LATENCY_MS, lines_per_invoice=LINES, faults=faults,
                     log=r.work / "logs" / f"sim-{provider}-{n}.log") as sim:
                sim.configure(as_of=as_of, per_day={provider: per_day})
                for stream in spec.streams:
                    if provider == "akinon" and n > only_akinon_above and stream.name != "invoices":
                        continue
                    log(f"extract {provider}.{stream.name} at {n:,} invoices ({per_day}/day x {days} days)")
                    res = r.job(extract_job(sim, provider, stream.name, EPOCH, as_of + dt.timedelta(days=1),
                                            landing), env=env, server_pid=sim.pid)
                    res.update({"provider": provider, "entity": stream.name, "scale": n, "landing": str(landing)})
                    if "error" not in res:
                        res.update(floor_seconds(res["pages"], res["max_concurrency"], res["rate_limit"]))
                        log(f"  {res['records']:,} records, {res['pages']} pages in {res['seconds']}s "
                            f"(floor {res['floor_s']}s), RSS {res['rss_mb']} MB, sim CPU {res['server_cpu_s']}s")
                    rows.append(res)
    return rows


def phase_load(r: Runner, extracts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """load_entity (merge by key) vs a plain CREATE TABLE AS read_parquet of the same files."""
    rows = []
    for e in extracts:
        if "error" in e or not e.get("records"):
            continue
        tag = f"{e['provider']}-{e['entity']}-{e['scale']}"
        dbdir = r.work / "load" / tag
        shutil.rmtree(dbdir, ignore_errors=True)
        dbdir.mkdir(parents=True)
        log(f"load {e['provider']}.{e['entity']} at {e['scale']:,} ({e['records']:,} rows)")
        ld = r.job({"mode": "load", "provider": e["provider"], "entity": e["entity"], "landing": e["landing"],
                    "db": str(dbdir / "merge.duckdb"), "block_airflow": True})
        cp = r.job({"mode": "ctas", "files": e["files"], "db": str(dbdir / "plain.duckdb"),
                    "provider": e["provider"], "entity": e["entity"]})
        rows.append({"provider": e["provider"], "entity": e["entity"], "scale": e["scale"],
                     "rows": e["records"], "load": ld, "ctas": cp})
        shutil.rmtree(dbdir, ignore_errors=True)
    return rows


def peer_extract_job(base_conn: dict[str, Any], as_of: dt.datetime, landing: Path) -> dict[str, Any]:
    return {"mode": "extract", "provider": "akinon", "stream": "invoices", "conn": base_conn,
            "start": EPOCH.isoformat(), "end": (as_of + dt.timedelta(days=1)).isoformat(),
            "landing": str(landing), "block_airflow": True}


def run_ours(r: Runner, base_conn: dict[str, Any], as_of: dt.datetime, work: Path,
             server_pid: int | None, capped_load: str | None = None) -> dict[str, Any]:
    landing, db = work / "landing", work / "ours.duckdb"
    probe = cpu_probe()
    ex = r.job(peer_extract_job(base_conn, as_of, landing), server_pid=server_pid)
    ex["cpu_probe_s"] = probe
    ld = r.job({"mode": "load", "provider": "akinon", "entity": "invoices", "landing": str(landing),
                "db": str(db), "block_airflow": True}) if "error" not in ex else {"error": "no extract"}
    out = {"extract": ex, "load": ld}
    if capped_load and "error" not in ex:
        # The same load with another DuckDB memory limit (the load task's IWH_DUCKDB_MEMORY_LIMIT).
        out["load_capped"] = r.job({"mode": "load", "provider": "akinon", "entity": "invoices",
                                    "landing": str(landing), "db": str(work / "ours-capped.duckdb"),
                                    "block_airflow": True}, env={"IWH_DUCKDB_MEMORY_LIMIT": capped_load})
        out["load_capped"]["memory_limit"] = capped_load
    return out


def run_dlt(r: Runner, dlt_py: Path, base_url: str, token: str, as_of: dt.datetime, work: Path,
            server_pid: int | None) -> dict[str, Any]:
    job = {"base_url": base_url, "token": token, "page_size": 100, "gte": iso_z(EPOCH),
           "lt": iso_z(as_of + dt.timedelta(days=1)), "db": str(work / "dlt.duckdb"),
           "pipelines_dir": str(work / "dlt-pipelines"), "loader_file_format": "parquet",
           "write_disposition": "merge"}
    probe = cpu_probe()
    res = r.child([str(dlt_py), str(BENCH / "peer_dlt.py"), json.dumps(job)], server_pid=server_pid,
                  name="dlt", env={"RUNTIME__LOG_LEVEL": "ERROR"})
    res["cpu_probe_s"] = probe
    return res


def peer_rounds(r: Runner, dlt_py: Path | None, rounds: int, what: str, conn: dict[str, Any], token: str,
                as_of: dt.datetime, work: Path, server_pid: int | None,
                capped_load: str | None = None) -> list[dict[str, Any]]:
    """``rounds`` rounds of ours then dlt, back to back, each from a clean ``work`` directory (the capped
    load only in the first)."""
    pairs = []
    for i in range(rounds):
        log(f"peer on {what}, round {i + 1} of {rounds}: this project")
        shutil.rmtree(work, ignore_errors=True)
        pair = {"ours": run_ours(r, conn, as_of, work, server_pid, capped_load=capped_load if i == 0 else None)}
        if dlt_py:
            log(f"peer on {what}, round {i + 1} of {rounds}: dlt")
            pair["dlt"] = run_dlt(r, dlt_py, conn["host"], token, as_of, work, server_pid)
        pairs.append(pair)
    return pairs


def median_round(pairs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(ours, dlt) of the round whose dlt / ours wall ratio is the median (ours' wall without dlt).

    The two cores' speed moves with the host's other guests from one minute to the next (the CPU probe
    read 0.30 to 0.52 s within a day), and ours takes seconds where dlt takes a minute: one round of each
    is a draw of the host's speed during ours. Each round runs ours then dlt back to back, and every round
    is reported; the median one is the result."""
    def key(pair: dict[str, Any]) -> float:
        ours = pair["ours"]
        if any("error" in x for x in (ours.get("extract", {}), ours.get("load", {}))):
            return float("-inf")
        wall = ours["extract"]["process_wall"] + ours["load"]["process_wall"]
        dlt = pair.get("dlt")
        if dlt is None:
            return -wall
        return float("-inf") if "error" in dlt else dlt["process_wall"] / wall

    ranked = sorted(pairs, key=key)
    mid = ranked[(len(ranked) - 1) // 2]
    return mid["ours"], mid.get("dlt")


def phase_peer(r: Runner, dlt_py: Path | None, n: int, live: bool, replay: bool,
               rounds: int = 1) -> dict[str, Any]:
    """Akinon invoices, n of them, 100 a page, 20 ms: dlt vs the project's extractor + load, ``rounds``
    times each (median_round)."""
    import replay as rp

    out: dict[str, Any] = {"scale": n, "rounds": rounds}
    per_day, days = volume(n)
    as_of = EPOCH + dt.timedelta(days=days)
    base = r.work / "peer" / str(n)
    shutil.rmtree(base, ignore_errors=True)
    with Sim(latency_ms=LATENCY_MS, lines_per_invoice=LINES, log=r.work / "logs" / f"sim-peer-{n}.log") as sim:
        sim.configure(as_of=as_of, per_day={"akinon": per_day})
        conn = sim.conn("akinon")
        sim.get("/_sim/health")
        # The recording (every page once, for the replay) comes first, outside the timings: the simulator
        # caches the ids of the filter and keeps each record's rendered JSON (its record memo), so both
        # live clients after it are served the same way, rather than the first one paying for the filter
        # and every record's rendering and the second not.
        log(f"recording {n:,} invoices ({n // 100:,} pages) from the simulator (the replay's pages; warms "
            "the simulator's record memo for the live runs)")
        rec = base / "recording.pickle"
        rec.parent.mkdir(parents=True, exist_ok=True)
        params = {"modified_date__gte": iso_z(EPOCH), "modified_date__lt": iso_z(as_of + dt.timedelta(days=1)),
                  "limit": 100}
        out["recording"] = rp.record(conn["host"], "/api/v1/oms/invoices/", params,
                                     {"Authorization": f"Token {conn['password']}"}, rec)
        out["recording"]["memo"] = sim.get("/_sim/memo/akinon")
        if live:
            out["live_rounds"] = peer_rounds(r, dlt_py, rounds, f"the live simulator, {n:,} invoices", conn,
                                             conn["password"], as_of, base / "live", sim.pid)
            out["live_ours"], out["live_dlt"] = median_round(out["live_rounds"])
            out["live_memo"] = sim.get("/_sim/memo/akinon")
    if replay:
        port = simproc.free_port()
        server = subprocess.Popen([PY, str(BENCH / "replay.py"), "serve", str(rec), str(port), str(LATENCY_MS)],
                                  stdout=subprocess.PIPE, text=True, start_new_session=True)
        try:
            server.stdout.readline()  # "replaying N pages on ..." once it listens
            rconn = {**conn, "host": f"http://127.0.0.1:{port}/akinon"}
            out["replay_rounds"] = peer_rounds(r, dlt_py, rounds, f"the replay, {n:,} invoices", rconn,
                                               conn["password"], as_of, base / "replay", server.pid,
                                               capped_load="16GB")
            out["replay_ours"], out["replay_dlt"] = median_round(out["replay_rounds"])
            out["replay_ours"].setdefault("load_capped", out["replay_rounds"][0]["ours"].get("load_capped"))
            if report.PYSPY:
                # Where the extractor's time goes, from a run of its own (not timed: the sampler takes CPU
                # from the same two cores). Samples only where a thread holds the GIL: the extraction is
                # bound by the one core its Python code runs on.
                log(f"peer on the replay, {n:,} invoices: this project's extractor under py-spy --gil")
                shutil.rmtree(base / "profiled", ignore_errors=True)
                out["replay_profiled"] = r.job(peer_extract_job(rconn, as_of, base / "profiled" / "landing"),
                                               server_pid=server.pid, spy_gil=True,
                                               spy=r.work / "profiles" / f"extractor-replay-{n}.txt")
            out["replay_server_rss_mb"] = round(simproc.rss_kb_of(server.pid) / 1024, 1)
        finally:
            server.terminate()
            server.wait(10)
        rec.unlink(missing_ok=True)
    shutil.rmtree(base, ignore_errors=True)
    return out


def warm(conn: dict[str, Any], as_of: dt.datetime) -> None:
    import urllib.parse
    import urllib.request

    q = urllib.parse.urlencode({"modified_date__gte": iso_z(EPOCH),
                                "modified_date__lt": iso_z(as_of + dt.timedelta(days=1)), "limit": 1})
    req = urllib.request.Request(f"{conn['host']}/api/v1/oms/invoices/?{q}",
                                 headers={"Authorization": f"Token {conn['password']}"})
    urllib.request.urlopen(req, timeout=600).read()


def phase_profile(r: Runner, n: int) -> dict[str, Any]:
    """py-spy of the extractor and of the simulator during one live Akinon invoices extraction."""
    per_day, days = volume(n)
    as_of = EPOCH + dt.timedelta(days=days)
    with Sim(latency_ms=LATENCY_MS, lines_per_invoice=LINES, log=r.work / "logs" / "sim-profile.log") as sim:
        sim.configure(as_of=as_of, per_day={"akinon": per_day})
        warm(sim.conn("akinon"), as_of)
        log(f"profiling a live Akinon invoices extraction ({n:,}) and the simulator")
        return r.job(extract_job(sim, "akinon", "invoices", EPOCH, as_of + dt.timedelta(days=1),
                                 r.work / "profile" / "landing"), server_pid=sim.pid,
                     spy=r.work / "profiles" / f"extractor-live-{n}.txt",
                     spy_server=r.work / "profiles" / f"simulator-live-{n}.txt")


def phase_dealpos(r: Runner, n: int, rate_scale: float) -> dict[str, Any]:
    """DealPOS invoices under the scaled rate limit: several windows, wall vs the floor, 429s by time."""
    per_day, days = volume(n, 2_000)
    as_of = EPOCH + dt.timedelta(days=days)
    period = 180 * rate_scale
    faults = {"dealpos": {"rate_limit": [50, period]}}
    with Sim(latency_ms=LATENCY_MS, lines_per_invoice=LINES, faults=faults,
             log=r.work / "logs" / "sim-dealpos-rate.log") as sim:
        sim.configure(as_of=as_of, per_day={"dealpos": per_day})
        log(f"DealPOS invoices, {n:,} under 50 requests per {period:g}s (IWH_RATE_WINDOW_SCALE={rate_scale})")
        res = r.job(extract_job(sim, "dealpos", "invoices", EPOCH, as_of + dt.timedelta(days=1),
                                r.work / "dealpos" / "landing"),
                    env={"IWH_RATE_WINDOW_SCALE": str(rate_scale)}, server_pid=sim.pid)
        res["server"] = sim.fault_counters("dealpos")
    res.update({"scale": n, "period_s": period})
    if "error" not in res:
        res.update(floor_seconds(res["requests"], res["max_concurrency"], res["rate_limit"]))
    shutil.rmtree(r.work / "dealpos", ignore_errors=True)
    return res


def phase_backfill(r: Runner, specs: dict[str, Any], scale: float, rate_scale: float) -> dict[str, Any]:
    """A one-year backfill of every provider (one window per stream), then the daily run after it."""
    data = r.work / "backfill" / "data"
    shutil.rmtree(data.parent, ignore_errors=True)
    landing, db = data / "landing", data / "warehouse" / "work.duckdb"
    db.parent.mkdir(parents=True)
    env = {"IWH_RATE_WINDOW_SCALE": str(rate_scale), "IWH_DATA_DIR": str(data)}
    year_end = EPOCH + dt.timedelta(days=365)
    out: dict[str, Any] = {"scale": scale}
    faults = {"dealpos": {"rate_limit": [50, 180 * rate_scale]}}
    sim = Sim(latency_ms=LATENCY_MS, lines_per_invoice=LINES, faults=faults,
              log=r.work / "logs" / "sim-backfill.log")
    sim.cmd += ["--scale", str(scale)]
    day = dt.timedelta(days=1)
    with sim:
        for run, (start, end) in (("backfill", (EPOCH, year_end)), ("incremental", (year_end, year_end + day)),
                                  ("year_on", (year_end + day, year_end + 2 * day))):
            if run == "year_on":
                # The same pipeline a year on: 365 daily partitions of every entity in the landing (copies of
                # the daily run's, all loaded), and what the day before left (landed_markers' fold).
                daily_label = f"incremental-{(year_end + day).date()}"
                out["history_s"] = r.child([PY, "-c", HISTORY, str(landing), daily_label, str(HISTORY_DAYS)],
                                           env=env, name="history")
            sim.post("/_sim/config", {"as_of": end.isoformat()})
            steps: dict[str, Any] = {"extract": [], "load": None, "dbt": None, "cpu_probe_s": cpu_probe()}
            log(f"{run}: extract [{start.date()}, {end.date()}) of every stream of {', '.join(specs)}")
            for provider, spec in specs.items():
                for stream in spec.streams:
                    label = f"{run}-{end.date().isoformat()}"
                    res = r.job(extract_job(sim, provider, stream.name, start, end, landing, label=label),
                                env=env, server_pid=sim.pid)
                    res.update({"provider": provider, "entity": stream.name})
                    steps["extract"].append(res)
            log(f"{run}: load")
            steps["load"] = r.child([PY, "-c", LOAD_ALL, str(db), str(landing), run], env=env, name=f"load-{run}")
            log(f"{run}: dbt build")
            steps["dbt"] = r.child([PY, "-c", DBT_BUILD, end.date().isoformat()], env=env, name=f"dbt-{run}")
            out[run] = steps
            if steps["dbt"].get("error"):
                log(f"  dbt failed: {steps['dbt']['error'][:300]}")
    shutil.rmtree(data.parent, ignore_errors=True)
    return out


HISTORY_DAYS = 365
# A year of daily partitions before the next daily run: each entity's daily partition (window label
# argv[2]) copied to the windows daily-<day> of the 365 days before it (labels that sort between the
# backfill's and the daily run's, with the daily run's batches: loaded already), then the fold of landed
# markers the daily run would have kept had they been there.
HISTORY = """
import datetime as dt, json, shutil, sys, time
from pathlib import Path
from invoice_warehouse.registry import PROVIDERS
from invoice_warehouse.engine.runner import landed_markers
t0 = time.monotonic()
landing, label, days = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
last = dt.date.fromisoformat(label.split("-", 1)[1])
copies = 0
for daily in sorted(landing.glob(f"*/*/window={label}")):
    for i in range(days, 0, -1):
        window = f"daily-{last - dt.timedelta(days=i)}"
        part = daily.with_name(f"window={window}")
        shutil.copytree(daily, part)
        m = json.loads((part / "_manifest.json").read_text())
        m["window"] = window
        (part / "_manifest.json").write_text(json.dumps(m))
        copies += 1
t1 = time.monotonic()
for name, spec in PROVIDERS.items():
    for stream in spec.streams:
        if stream.unchanged_marker:
            landed_markers(landing, name, stream, label)
print("BENCH-RESULT " + json.dumps({"partitions": copies, "copy_s": round(t1 - t0, 2),
      "markers_s": round(time.monotonic() - t1, 2)}))
"""

# The load and dbt steps of a run, as the warehouse DAG does them (airflow is not imported by either).
LOAD_ALL = """
import json, sys, time
from invoice_warehouse.registry import PROVIDERS
from invoice_warehouse.warehouse.load import load_all
t0 = time.monotonic()
audits = load_all(sys.argv[1], sys.argv[2], list(PROVIDERS.values()), run_id=sys.argv[3])
print("BENCH-RESULT " + json.dumps({"seconds": round(time.monotonic() - t0, 3),
      "rows_read": sum(a["rows_read"] for a in audits), "rows_inserted": sum(a["rows_inserted"] for a in audits),
      "rows_updated": sum(a["rows_updated"] for a in audits), "entities": len(audits)}))
"""
DBT_BUILD = """
import json, sys, time
from invoice_warehouse import config
from invoice_warehouse.pipeline import build
t0 = time.monotonic()
out = build(sys.argv[1])
seconds = round(time.monotonic() - t0, 3)
rr = json.loads((config.data_dir() / "dbt" / "target" / "run_results.json").read_text())
nodes = sorted(((r["unique_id"], round(r["execution_time"], 2)) for r in rr["results"]), key=lambda x: -x[1])
print("BENCH-RESULT " + json.dumps({"seconds": seconds, "tail": out.strip().splitlines()[-1:],
      "build_elapsed": round(rr["elapsed_time"], 2), "nodes": len(nodes),
      "node_seconds": round(sum(t for _, t in nodes), 2), "slowest": nodes[:8],
      "threads": len({r["thread_id"] for r in rr["results"]})}))
"""


# --- main -------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--full", action="store_true", help="add 1M invoices and the live-simulator dlt peer at 100k")
    p.add_argument("--scales", default=None, help="comma-separated invoice counts (default 10000,100000)")
    p.add_argument("--peer", type=int, default=100_000, help="invoices in the dlt comparison (default 100k)")
    p.add_argument("--no-dlt", action="store_true", help="skip dlt (no venv is made)")
    p.add_argument("--peer-rounds", type=int, default=3,
                   help="rounds of ours then dlt at the peer scale, on each server; the median is the result")
    p.add_argument("--rate-window-scale", type=float, default=0.1,
                   help="DealPOS window scale: engine IWH_RATE_WINDOW_SCALE and simulator rate_limit (50, 180 x it)")
    p.add_argument("--dealpos", type=int, default=70_000, help="DealPOS invoices in the rate-limit run")
    p.add_argument("--backfill-scale", type=float, default=5.0,
                   help="world scale of the one-year backfill (default 5: about 100k invoices in the year)")
    p.add_argument("--backfill-small-scale", type=float, default=2.0,
                   help="with --full, a second, smaller year at this scale (0: none)")
    p.add_argument("--phases", default="scales,load,peer,dealpos,backfill,profile",
                   help="comma-separated phases to run")
    p.add_argument("--out", default=str(BENCH / "results"))
    p.add_argument("--merge", default=None, help="start from a saved results.json; re-run only --phases")
    p.add_argument("--render", default=None, help="only re-render the markdown from a saved results.json")
    args = p.parse_args(argv)
    if args.merge:
        # Re-run some phases into a saved run (e.g. after fixing one measurement), keep the others.
        results_base = json.loads(Path(args.merge).read_text())
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        write_results(saved, Path(args.out), saved["started"][:10])
        return 0

    started = time.monotonic()
    today = dt.date.today().isoformat()
    work = BENCH / "work" / time.strftime("%Y%m%dT%H%M%S")
    (work / "logs").mkdir(parents=True)
    r = Runner(work)
    phases = set(args.phases.split(","))
    scales = [int(x) for x in args.scales.split(",")] if args.scales else [10_000, 100_000]
    if args.full and not args.scales:
        scales.append(1_000_000)
    specs = providers()
    log(f"providers in the registry: {', '.join(specs)}; scales {scales}; work dir {work}")

    dlt_py = None if args.no_dlt else ensure_venv(DLT_VENV, DLT_REQUIREMENT)
    report.PYSPY = ensure_venv(TOOLS_VENV, PYSPY_REQUIREMENT) and TOOLS_VENV / "bin" / "py-spy"
    header = {"args": vars(args), "scales": scales, "providers": list(specs), "env": report.environment(dlt_py),
              "started": dt.datetime.now().isoformat(),
              "loadavg_start": Path("/proc/loadavg").read_text().split()[:3], "cpu_probe_start": cpu_probe()}
    if args.merge:
        # The saved run keeps its header; what was re-run, when and how long it took is noted beside it.
        results: dict[str, Any] = results_base
        results.setdefault("reruns", []).append({"phases": sorted(phases), "started": header["started"],
                                                 "loadavg_start": header["loadavg_start"]})
    else:
        results = header

    def guarded(name: str, fn, *a: Any) -> Any:
        if name not in phases:
            return None
        t0 = time.monotonic()
        try:
            return fn(*a)
        except Exception:  # noqa: BLE001 - one broken phase must not lose the others' numbers
            log(f"phase {name} failed:\n{traceback.format_exc()}")
            return {"error": traceback.format_exc().strip().splitlines()[-1]}
        finally:
            results.setdefault("phase_seconds", {})[name] = round(time.monotonic() - t0, 1)
            # Saved after every phase: a later failure never loses the numbers (re-render with --render).
            (work / "results.json").write_text(json.dumps(results, indent=2, default=str))

    def store(key: str, value: Any) -> None:
        if value is not None or not args.merge:  # merging: a phase not re-run keeps its saved numbers
            results[key] = value

    extracts = guarded("scales", phase_scales, r, specs, scales, args.rate_window_scale, 10_000, args.full)
    store("extracts", extracts if isinstance(extracts, list) else None)
    store("loads", guarded("load", phase_load, r, [e for e in results.get("extracts") or [] if isinstance(e, dict)]))
    # The peer at 100k on the replay (and, with --full, on the live simulator too), and at 10k live.
    store("peer", guarded("peer", phase_peer, r, dlt_py, args.peer, args.full, True, args.peer_rounds))
    store("peer_small", guarded("peer", phase_peer, r, dlt_py, 10_000, True, False))
    store("dealpos", guarded("dealpos", phase_dealpos, r, args.dealpos, args.rate_window_scale)
          if "dealpos" in specs else {"pending": "no DealPOS provider in the registry"})
    store("backfill", guarded("backfill", phase_backfill, r, specs, args.backfill_scale, args.rate_window_scale))
    if args.full and args.backfill_small_scale:
        store("backfill_small", guarded("backfill", phase_backfill, r, specs, args.backfill_small_scale,
                                        args.rate_window_scale))
    store("profile", guarded("profile", phase_profile, r, 10_000))
    try:
        results["profiles"] = {**(results.get("profiles") or {}), **report.summarize_profiles(work / "profiles")}
    except Exception:  # noqa: BLE001 - a profile that cannot be read must not lose the results
        log(f"profiles could not be summarized:\n{traceback.format_exc()}")
    if args.merge:
        results["reruns"][-1]["seconds"] = round(time.monotonic() - started, 1)
    else:
        results["seconds"] = round(time.monotonic() - started, 1)
        results["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
        results["cpu_probe_end"] = cpu_probe()

    (work / "results.json").write_text(json.dumps(results, indent=2, default=str))
    write_results(results, Path(args.out), results["started"][:10])
    log(f"done in {time.monotonic() - started:.0f}s: {Path(args.out) / f'{today}.md'}")
    # Keep the raw profiles and logs of the last run only (bench/work is scratch).
    for old in sorted((BENCH / "work").iterdir())[:-1]:
        shutil.rmtree(old, ignore_errors=True)
    return 0


def write_results(results: dict[str, Any], out: Path, today: str) -> None:
    md = report.render(results)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{today}.md").write_text(md)
    (out / "latest.md").write_text(md)
    (out / f"{today}.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
