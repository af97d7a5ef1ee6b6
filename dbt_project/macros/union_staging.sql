{#- Union stg_<provider>__<entity> over the providers that offer the entity (var `providers`). -#}
{% macro union_staging(entity) -%}
    {%- set offered = var('entity_providers')[entity] -%}
    {%- for p in offered %}
    select * from {{ ref('stg_' ~ p ~ '__' ~ entity) }}
    {% if not loop.last %}union all by name{% endif %}
    {%- endfor %}
{%- endmacro %}
