"""One factory makes every extract DAG; one function makes the warehouse DAG.

Parse-time rules: nothing here touches the network, a database or Airflow Variables. The provider
registry is static Python; connections are read by the hooks inside tasks.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, Asset, AssetAlias, CronDataIntervalTimetable, Param, get_current_context, task

from invoice_warehouse import pipeline
from invoice_warehouse.engine.spec import ProviderSpec

UTC = dt.timezone.utc
START = dt.datetime(2025, 1, 1, tzinfo=UTC)


def default_args(retries: int = 3) -> dict[str, Any]:
    # Task-level retries are the second layer (outages); HTTP retries inside the engine are the first.
    return {
        "owner": "data-platform",
        "retries": retries,
        "retry_delay": dt.timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=15),
    }


def entity_assets(spec: ProviderSpec) -> list[Asset]:
    return [Asset(name=f"landing_{spec.name}_{s.name}", uri=pipeline.asset_uri(spec.name, s.name))
            for s in spec.streams]


def _extract_doc(spec: ProviderSpec) -> str:
    rows = "\n".join(f"| `{s.name}` | `{s.path}` | {'date window' if s.window else 'full sweep'} | "
                     f"{s.description or ''} |" for s in spec.streams)
    return f"""
# extract_{spec.name}: {spec.title} -> landed Parquet

Daily, for its data interval, extracts every entity of **{spec.title}** through the
`{spec.conn_type}` connection `{spec.default_conn_id}` into
`$IWH_DATA_DIR/landing/{spec.name}/<entity>/window=<day>/` (one partition per day, replaced on re-run),
one mapped task per entity in pool `{pipeline.api_pool(spec.name)}` (the API's concurrency budget).
Each entity emits its Asset; the `warehouse` DAG loads, builds and publishes when they update.

| entity | endpoint | incremental | notes |
|---|---|---|---|
{rows}

**Backfill** a date range: Airflow UI -> this DAG -> *Trigger* -> *Backfill* (or
`airflow backfill create --dag-id extract_{spec.name} --from-date 2025-03-01 --to-date 2025-03-07`).
Runs are idempotent: the same day extracted again replaces its own partition.

**Manual run** params: `entities` (default all), `date_start`/`date_end` (inclusive, default the data
interval), `full_refresh` (entities to re-extract from {pipeline.HISTORY_START} and rebuild).
"""


def make_extract_dag(spec: ProviderSpec) -> DAG:
    """The extract DAG of one provider (everything bound through arguments: no loop closures)."""
    names = [s.name for s in spec.streams]
    alias = AssetAlias(f"landing_{spec.name}")
    with DAG(
        dag_id=f"extract_{spec.name}",
        description=f"Extract {spec.title} into landed Parquet",
        schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
        start_date=START,
        catchup=False,
        max_active_runs=4,
        default_args=default_args(),
        doc_md=_extract_doc(spec),
        tags=["extract", spec.name],
        params={
            "entities": Param(names, type="array", items={"type": "string", "enum": names},
                              description="Entities to extract (default: all)."),
            "date_start": Param(None, type=["null", "string"], format="date",
                                description="First day (inclusive); default: the run's data interval."),
            "date_end": Param(None, type=["null", "string"], format="date",
                              description="Last day (inclusive); default: the run's data interval."),
            "full_refresh": Param([], type="array", items={"type": "string", "enum": names},
                                  description="Entities to re-extract from the start of history."),
        },
    ) as dag:

        def plan_stage(provider: str, stage: int) -> list[dict[str, Any]]:
            ctx = get_current_context()
            items = pipeline.plan(provider, ctx["params"], ctx.get("data_interval_start"),
                                  ctx.get("data_interval_end"))
            return [i for i in items if i["stage"] == stage]

        @task(task_id="plan")
        def plan_task(provider: str) -> list[dict[str, Any]]:
            return plan_stage(provider, 1)

        def run_item(item: dict[str, Any]) -> dict[str, Any]:
            ctx = get_current_context()
            result = pipeline.extract(item, ctx["run_id"])
            ctx["outlet_events"][AssetAlias(f"landing_{item['provider']}")].add(
                Asset(name=f"landing_{item['provider']}_{item['entity']}",
                      uri=pipeline.asset_uri(item["provider"], item["entity"])),
                extra={k: result[k] for k in ("records", "quarantined", "windows")})
            return result

        mapped = {"pool": pipeline.api_pool(spec.name), "outlets": [alias],
                  "map_index_template": "{{ task.op_kwargs['item']['entity'] }}",
                  "retry_delay": dt.timedelta(seconds=30)}

        @task(task_id="extract", **mapped)
        def extract_task(item: dict[str, Any]) -> dict[str, Any]:
            return run_item(item)

        first = extract_task.expand(item=plan_task(spec.name))
        if any(s.ids_from for s in spec.streams):
            # Streams fed by ids other streams landed (IDH products) run once those have landed.
            @task(task_id="plan_dependent")
            def plan_dependent_task(provider: str) -> list[dict[str, Any]]:
                return plan_stage(provider, 2)

            @task(task_id="extract_dependent", **mapped)
            def extract_dependent_task(item: dict[str, Any]) -> dict[str, Any]:
                return run_item(item)

            dependent = plan_dependent_task(spec.name)
            first >> dependent
            extract_dependent_task.expand(item=dependent)
    return dag


WAREHOUSE_DOC = """
# warehouse: load -> dbt build -> publish

Runs when any extract DAG updates an entity Asset (or by hand). Every step writes the working DuckDB
file, so each runs in pool `duckdb_writer` (one slot) and the DAG has one active run:

1. **load**: merges every new landed partition into `raw_<provider>.<entity>` (latest extraction wins,
   idempotent), quarantined records into `meta.quarantine`, an audit row per entity in
   `meta.load_audit`.
2. **dbt_build**: dbt in the task's process (staging -> intermediate -> marts, with tests and contract
   constraints; seeds and unit tests when the project changed). A failing check stops here: nothing is
   published.
3. **publish**: copies the working file and swaps the copy in as the published warehouse
   (`$IWH_DATA_DIR/warehouse/warehouse.duckdb`) with one atomic rename. Analysts reading the old file
   are never blocked and never see a half-built warehouse.

Params: `providers` to load (default all), `as_of_date` for the receivables marts (default today).
"""


def make_warehouse_dag(specs: list[ProviderSpec]) -> DAG:
    assets = [a for spec in specs for a in entity_assets(spec)]
    schedule: Any = None
    for a in assets:
        schedule = a if schedule is None else schedule | a
    with DAG(
        dag_id="warehouse",
        description="Load landed Parquet into DuckDB, build the dbt marts, publish atomically",
        schedule=schedule,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(retries=2),
        doc_md=WAREHOUSE_DOC,
        tags=["warehouse", "dbt"],
        params={
            "providers": Param([s.name for s in specs], type="array",
                               items={"type": "string", "enum": [s.name for s in specs]},
                               description="Providers whose landed data to load."),
            "as_of_date": Param(None, type=["null", "string"], format="date",
                                description="As-of date for receivables marts (default: today)."),
        },
    ) as dag:

        @task(task_id="load", pool=pipeline.WRITER_POOL)
        def load_task() -> list[dict[str, Any]]:
            ctx = get_current_context()
            return pipeline.load(ctx["run_id"], ctx["params"].get("providers"))

        @task(task_id="dbt_build", pool=pipeline.WRITER_POOL)
        def build_task() -> None:
            ctx = get_current_context()
            pipeline.build(ctx["params"].get("as_of_date"))

        @task(task_id="publish", pool=pipeline.WRITER_POOL)
        def publish_task() -> str:
            return pipeline.publish_warehouse()

        load_task() >> build_task() >> publish_task()
    return dag
