"""Airflow warehouse DAG: load landed Parquet into DuckDB, build the dbt marts, publish atomically."""

from invoice_warehouse.dag_factory import make_warehouse_dag
from invoice_warehouse.registry import PROVIDERS

warehouse = make_warehouse_dag(list(PROVIDERS.values()))
