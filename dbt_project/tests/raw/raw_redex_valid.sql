-- REDEX's raw tables (raw_redex, landed by the extract tasks): every key not null and unique,
-- the columns staging relies on not null, known values where the API has a closed list. One scan per
-- table, one test node for the provider (macros/raw_checks.sql); fails with one row per failed check.
{{ raw_tables_valid([
    {'table': source('raw_redex', 'invoices'),
     'not_null': ['InvoiceNumber', 'TransactionType', 'Status', 'Total', 'MainInvoice'],
     'unique': ['InvoiceNumber'],
     'accepted_values': {'TransactionType': ['AccountsPayable', 'AccountsReceivable']}},
    {'table': source('raw_redex', 'orders'), 'not_null': ['TransactionId', 'Status'], 'unique': ['TransactionId']},
]) }}
