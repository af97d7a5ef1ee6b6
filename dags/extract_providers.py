"""Airflow extract DAGs, one per provider in the registry: ``extract_<provider>`` (see each DAG's docs)."""

from invoice_warehouse.dag_factory import make_extract_dag
from invoice_warehouse.registry import PROVIDERS

for _spec in PROVIDERS.values():
    globals()[f"extract_{_spec.name}"] = make_extract_dag(_spec)
