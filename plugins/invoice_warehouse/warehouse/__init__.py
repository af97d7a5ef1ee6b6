"""DuckDB: load landed Parquet (merge by key, audit, quarantine), run dbt, publish atomically."""
