"""Invoice & receivables warehouse: provider hooks, extraction engine, DuckDB warehouse."""

__version__ = "0.1.0"
