-- Akinon OMS's raw tables (raw_akinon, landed by the extract tasks): every key not null and unique,
-- the columns staging relies on not null, known values where the API has a closed list. One scan per
-- table, one test node for the provider (macros/raw_checks.sql); fails with one row per failed check.
{{ raw_tables_valid([
    {'table': source('raw_akinon', 'invoices'), 'not_null': ['id'], 'unique': ['id']},
    {'table': source('raw_akinon', 'orders'), 'not_null': ['id', 'modified_date'], 'unique': ['id']},
    {'table': source('raw_akinon', 'stock_locations'), 'not_null': ['id'], 'unique': ['id']},
]) }}
