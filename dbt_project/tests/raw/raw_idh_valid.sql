-- IDH API Manager's raw tables (raw_idh, landed by the extract tasks): every key not null and unique,
-- the columns staging relies on not null, known values where the API has a closed list. One scan per
-- table, one test node for the provider (macros/raw_checks.sql); fails with one row per failed check.
{{ raw_tables_valid([
    {'table': source('raw_idh', 'orders'), 'not_null': ['po', 'ext_total'], 'unique': ['po']},
    {'table': source('raw_idh', 'invoices'), 'not_null': ['id'], 'unique': ['id']},
    {'table': source('raw_idh', 'payments'), 'not_null': ['id'], 'unique': ['id']},
    {'table': source('raw_idh', 'customers'), 'not_null': ['store_id'], 'unique': ['store_id']},
    {'table': source('raw_idh', 'returns'), 'not_null': ['id'], 'unique': ['id']},
    {'table': source('raw_idh', 'products'), 'not_null': ['product_id'], 'unique': ['product_id']},
]) }}
