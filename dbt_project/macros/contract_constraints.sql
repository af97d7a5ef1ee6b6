{#- The constraints of an incremental model's enforced contract are part of its table: DuckDB checks
    them on every insert, so each run checks the rows it adds (and nothing has to re-read the history).
    An incremental run inserts into the existing table as it is, though, so a table built before the
    contract declared its constraints (or all of them) would go unchecked. Run as a pre-hook of such a
    model: when the existing table's constraints differ from the contract's, rebuild the table in place
    with the contract's constraints, copying every row (which checks the stored rows against them) and
    keeping the history as it is. -#}
{% macro ensure_contract_constraints() %}
    {%- if not execute or not is_incremental() -%}
        {{ return('') }}
    {%- endif -%}
    {%- set expected = [] -%}
    {%- for name, column in model['columns'].items() -%}
        {%- for c in column.get('constraints', []) -%}
            {%- do expected.extend(iwh_constraint_keys(c['type'], [name])) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- for c in model.get('constraints', []) -%}
        {%- do expected.extend(iwh_constraint_keys(c['type'], c.get('columns') or [])) -%}
    {%- endfor -%}
    {%- set found = run_query(
        "select constraint_type, array_to_string(constraint_column_names, ',') from duckdb_constraints() "
        ~ "where database_name = '" ~ this.database ~ "' and schema_name = '" ~ this.schema
        ~ "' and table_name = '" ~ this.identifier ~ "'") -%}
    {%- set actual = [] -%}
    {%- for row in found.rows -%}
        {%- do actual.extend(iwh_constraint_keys(row[0] | lower | replace(' ', '_'), row[1].split(','))) -%}
    {%- endfor -%}
    {%- if iwh_canonical_constraints(expected) == iwh_canonical_constraints(actual) -%}
        {{ return('') }}
    {%- endif -%}
    {%- set rebuilt = this.incorporate(path={'identifier': this.identifier ~ '__dbt_constrained'}) -%}
    {%- set columns = model['columns'].keys() | join(', ') -%}
    {{ log("Rebuilding " ~ this ~ " with its contract's constraints (the existing table has "
           ~ iwh_canonical_constraints(actual) | join(', ') ~ ")", info=True) }}
    drop table if exists {{ rebuilt }};
    create table {{ rebuilt }} {{ get_table_columns_and_constraints() }};
    insert into {{ rebuilt }} ({{ columns }}) select {{ columns }} from {{ this }};
    drop table {{ this }};
    alter table {{ rebuilt }} rename to {{ adapter.quote(this.identifier) }};
{% endmacro %}

{#- Comparable keys of one constraint as the table carries it: NOT NULL per column (a primary key's
    columns too), one CHECK per check constraint. A primary key or unique key is not in the table (no
    index: macros/contract_keys.sql checks it as the model is written). -#}
{% macro iwh_constraint_keys(type, columns) %}
    {%- set cols = columns | join(',') -%}
    {%- if type == 'not_null' -%}
        {{ return(['NOT NULL:' ~ cols]) }}
    {%- elif type == 'primary_key' -%}
        {%- set keys = [] -%}
        {%- for c in columns -%}{%- do keys.append('NOT NULL:' ~ c) -%}{%- endfor -%}
        {{ return(keys) }}
    {%- elif type == 'unique' -%}
        {{ return([]) }}
    {%- elif type == 'check' -%}
        {{ return(['CHECK']) }}
    {%- else -%}
        {{ return([type | upper ~ ':' ~ cols]) }}
    {%- endif -%}
{% endmacro %}

{% macro iwh_canonical_constraints(keys) %}
    {#- NOT NULL once per column; CHECKs counted -#}
    {%- set out = [] -%}
    {%- for k in keys | sort -%}
        {%- if k == 'CHECK' or k not in out -%}{%- do out.append(k) -%}{%- endif -%}
    {%- endfor -%}
    {{ return(out) }}
{% endmacro %}
