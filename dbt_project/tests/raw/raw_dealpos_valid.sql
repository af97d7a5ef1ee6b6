-- DealPOS's raw tables (raw_dealpos, landed by the extract tasks): every key not null and unique,
-- the columns staging relies on not null, known values where the API has a closed list. One scan per
-- table, one test node for the provider (macros/raw_checks.sql); fails with one row per failed check.
{{ raw_tables_valid([
    {'table': source('raw_dealpos', 'invoices'), 'not_null': ['ID'], 'unique': ['ID']},
    {'table': source('raw_dealpos', 'returns'), 'not_null': ['ID'], 'unique': ['ID']},
    {'table': source('raw_dealpos', 'payments_received'), 'not_null': ['ID'], 'unique': ['ID']},
    {'table': source('raw_dealpos', 'outlets'), 'not_null': ['ID'], 'unique': ['ID']},
    {'table': source('raw_dealpos', 'customers'), 'not_null': ['ID'], 'unique': ['ID']},
    {'table': source('raw_dealpos', 'products'), 'not_null': ['ID'], 'unique': ['ID']},
]) }}
