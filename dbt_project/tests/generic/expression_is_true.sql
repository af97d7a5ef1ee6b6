{#- Every row (optionally only those matching `where_sql`) satisfies the boolean SQL `expression`.
    Written here because dbt packages (dbt_utils) are not available offline. -#}
{% test expression_is_true(model, expression, where_sql=none) %}
select *
from {{ model }}
where not coalesce(({{ expression }}), false)
{%- if where_sql %} and ({{ where_sql }}){% endif %}
{% endtest %}
