-- Every provider's staging customers on the one column contract (staging/README.md), column for column.
-- The providers come from var entity_providers.customers (dbt_project.yml).
{{ union_staging('customers') }}
