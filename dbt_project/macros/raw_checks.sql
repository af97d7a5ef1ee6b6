{#- The raw tables of one provider checked by one test (tests/raw/raw_<provider>_valid.sql), one scan
    per table: `not_null` columns have no NULL, every key in `unique` (a column, or a list of columns) is
    unique among its non-null values, and the non-null values of each column in `accepted_values` are in
    its list. The same rules as dbt's not_null, unique and accepted_values tests. The raw sources have no
    contract to carry constraints; one test node per provider, not one per table (24) or per column and
    check, because in a daily build every node costs dbt's fixed work whatever the rows it reads.
    Fails with one row per failed check: table_name, check_name, column_name and how many rows fail it
    (for unique: the rows beyond the first of each duplicated key).
    `tables`: a list of {'table': source(...), 'not_null': [...], 'unique': [...], 'accepted_values': {...}}. -#}
{% macro raw_tables_valid(tables) -%}
{%- if not tables -%}
    {{ exceptions.raise_compiler_error("raw_tables_valid: no tables given") }}
{%- endif %}
{#- each table with its checks, worked out once -#}
{%- set checked = [] -%}
{%- for t in tables -%}{%- do checked.append((t['table'], iwh_column_checks(t))) -%}{%- endfor %}
with
{%- for table, checks in checked %}
counts_{{ loop.index }} as (
    select
    {%- for check, column, expr in checks %}
        {{ expr }} as check_{{ loop.index }}{{ "," if not loop.last }}
    {%- endfor %}
    from {{ table }}
){{ "," if not loop.last }}
{%- endfor %}
{%- for table, checks in checked %}
{%- set table_index = loop.index %}
{%- set table_last = loop.last %}
{%- for check, column, expr in checks %}
select '{{ table.schema }}.{{ table.identifier }}' as table_name, '{{ check }}' as check_name,
    '{{ column }}' as column_name, check_{{ loop.index }} as failing_rows
from counts_{{ table_index }} where check_{{ loop.index }} > 0
{% if not (loop.last and table_last) %}union all{% endif %}
{%- endfor %}
{%- endfor %}
{%- endmacro %}

{#- (check name, column(s), count expression) of each check asked of one table of raw_tables_valid. -#}
{% macro iwh_column_checks(t) -%}
{%- set checks = [] -%}
{%- for column in t.get('not_null', []) -%}
    {%- do checks.append(('not_null', column, 'count(*) filter (where ' ~ adapter.quote(column) ~ ' is null)')) -%}
{%- endfor -%}
{%- for key in t.get('unique', []) -%}
    {%- set columns = [key] if key is string else key -%}
    {%- set quoted = [] -%}
    {%- for column in columns -%}{%- do quoted.append(adapter.quote(column)) -%}{%- endfor -%}
    {%- set present = quoted | join(' is not null and ') ~ ' is not null' -%}
    {%- do checks.append(('unique', columns | join(', '),
        'count(*) filter (where ' ~ present ~ ') - count(distinct (' ~ quoted | join(', ') ~ ')) filter (where '
        ~ present ~ ')')) -%}
{%- endfor -%}
{%- for column, values in t.get('accepted_values', {}).items() -%}
    {%- set literals = [] -%}
    {%- for value in values -%}{%- do literals.append("'" ~ (value | string | replace("'", "''")) ~ "'") -%}{%- endfor -%}
    {%- do checks.append(('accepted_values', column,
        'count(*) filter (where ' ~ adapter.quote(column) ~ ' not in (' ~ literals | join(', ') ~ '))')) -%}
{%- endfor -%}
{%- if not checks -%}
    {{ exceptions.raise_compiler_error("raw_tables_valid on " ~ t['table'] ~ ": no checks given") }}
{%- endif -%}
{{ return(checks) }}
{%- endmacro %}
