-- Every provider's staging invoices on the one column contract (staging/README.md), column for column.
-- The providers come from var entity_providers.invoices (dbt_project.yml).
{{ union_staging('invoices') }}
