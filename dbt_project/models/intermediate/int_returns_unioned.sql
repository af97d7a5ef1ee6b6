-- Every provider's staging returns on the one column contract (staging/README.md), column for column.
-- The providers come from var entity_providers.returns (dbt_project.yml).
{{ union_staging('returns') }}
