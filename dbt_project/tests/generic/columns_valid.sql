{#- The column checks of one table in one scan (one test node instead of one per column and check):
    `not_null` columns have no NULL, every key in `unique` (a column, or a list of columns) is unique
    among its non-null values, and the non-null values of each column in `accepted_values` are in its
    list. The same rules as dbt's not_null, unique and accepted_values tests. Fails with one row per
    failed check: check_name, column_name and how many rows fail it (for unique: the rows beyond the
    first of each duplicated key). Used on the raw sources, which have no contract to carry constraints,
    and for the composite key of fct_receivables_daily, too large a table for a key index. -#}
{% test columns_valid(model, not_null=[], unique=[], accepted_values={}) %}
{%- set checks = [] -%}
{%- for column in not_null -%}
    {%- do checks.append(('not_null', column, 'count(*) filter (where ' ~ adapter.quote(column) ~ ' is null)')) -%}
{%- endfor -%}
{%- for key in unique -%}
    {%- set columns = [key] if key is string else key -%}
    {%- set quoted = [] -%}
    {%- for column in columns -%}{%- do quoted.append(adapter.quote(column)) -%}{%- endfor -%}
    {%- set present = quoted | join(' is not null and ') ~ ' is not null' -%}
    {%- do checks.append(('unique', columns | join(', '),
        'count(*) filter (where ' ~ present ~ ') - count(distinct (' ~ quoted | join(', ') ~ ')) filter (where '
        ~ present ~ ')')) -%}
{%- endfor -%}
{%- for column, values in accepted_values.items() -%}
    {%- set literals = [] -%}
    {%- for value in values -%}{%- do literals.append("'" ~ (value | string | replace("'", "''")) ~ "'") -%}{%- endfor -%}
    {%- do checks.append(('accepted_values', column,
        'count(*) filter (where ' ~ adapter.quote(column) ~ ' not in (' ~ literals | join(', ') ~ '))')) -%}
{%- endfor -%}
{%- if not checks -%}
    {{ exceptions.raise_compiler_error("columns_valid on " ~ model ~ ": no checks given") }}
{%- endif %}
with counts as (
    select
    {%- for check, column, expr in checks %}
        {{ expr }} as check_{{ loop.index }}{{ "," if not loop.last }}
    {%- endfor %}
    from {{ model }}
)
{%- for check, column, expr in checks %}
select '{{ check }}' as check_name, '{{ column }}' as column_name, check_{{ loop.index }} as failing_rows
from counts where check_{{ loop.index }} > 0
{% if not loop.last %}union all{% endif %}
{%- endfor %}
{% endtest %}
