-- Every provider's staging products on the one column contract (staging/README.md), column for column.
-- The providers come from var entity_providers.products (dbt_project.yml).
{{ union_staging('products') }}
