-- Every provider's staging payments on the one column contract (staging/README.md), column for column.
-- The providers come from var entity_providers.payments (dbt_project.yml).
{{ union_staging('payments') }}
