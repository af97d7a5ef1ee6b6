-- Every provider's staging orders on the one column contract (staging/README.md), column for column.
-- The providers come from var entity_providers.orders (dbt_project.yml).
{{ union_staging('orders') }}
