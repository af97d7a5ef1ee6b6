-- Shopwave's raw tables (raw_shopwave, landed by the extract tasks): every key not null and unique,
-- the columns staging relies on not null, known values where the API has a closed list. One scan per
-- table, one test node for the provider (macros/raw_checks.sql); fails with one row per failed check.
{{ raw_tables_valid([
    {'table': source('raw_shopwave', 'invoices'), 'not_null': ['id', 'totalIncVat'], 'unique': ['id']},
    {'table': source('raw_shopwave', 'orders'), 'not_null': ['id'], 'unique': ['id']},
    {'table': source('raw_shopwave', 'baskets'), 'not_null': ['id'], 'unique': ['id']},
    {'table': source('raw_shopwave', 'transactions'), 'not_null': ['id'], 'unique': ['id']},
    {'table': source('raw_shopwave', 'stores'), 'not_null': ['id'], 'unique': ['id']},
    {'table': source('raw_shopwave', 'supplier_stores'), 'not_null': ['id'], 'unique': ['id']},
    {'table': source('raw_shopwave', 'products'), 'not_null': ['id'], 'unique': ['id']},
]) }}
