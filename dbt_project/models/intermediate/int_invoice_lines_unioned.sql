-- Every provider's staging invoice lines on the one column contract (staging/README.md), column for column.
-- The providers come from var entity_providers.invoice_lines (dbt_project.yml).
{{ union_staging('invoice_lines') }}
