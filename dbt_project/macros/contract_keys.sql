{#- Keys of an enforced contract (primary_key / unique, on a column or on the model) are checked by one
    grouping query as the model is written, not by a DuckDB index. A PRIMARY KEY or UNIQUE constraint
    makes DuckDB build an ART index on the table: on the daily rebuild of a scale-5 year those indexes
    took 2.4 s of the build's 13.7 s of node time, one thread (fct_invoice_lines, 354k rows: 0.62 s to
    insert with the key against 0.09 s without; counting its distinct keys takes 0.03 s). So the table is
    created with the contract's other constraints (not null, a primary key's columns included, and
    check), and the model's post-hook
    (iwh_check_contract_keys, set for every model in dbt_project.yml) fails the model when a key repeats,
    before its transaction commits: the last good table stays, and nothing downstream is built.

    dbt-duckdb renders the contract through get_table_columns_and_constraints (dispatched: the project's
    duckdb__ version wins); this one hands dbt's own renderers the contract without its keys. -#}
{% macro duckdb__get_table_columns_and_constraints() %}
    {%- set columns = {} -%}
    {%- set key_columns = [] -%}
    {%- for c in model.get('constraints', []) if c['type'] == 'primary_key' -%}
        {%- do key_columns.extend(c.get('columns') or []) -%}
    {%- endfor -%}
    {%- for name, column in model['columns'].items() -%}
        {%- set kept = [] -%}
        {%- set ns = namespace(not_null=name in key_columns) -%}
        {%- for c in column.get('constraints', []) -%}
            {%- if c['type'] == 'primary_key' or c['type'] == 'not_null' -%}
                {%- set ns.not_null = true -%}
            {%- elif c['type'] != 'unique' -%}
                {%- do kept.append(c) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if ns.not_null -%}{%- do kept.insert(0, {'type': 'not_null'}) -%}{%- endif -%}
        {%- do columns.update({name: dict(column, constraints=kept)}) -%}
    {%- endfor -%}
    {%- set model_constraints = [] -%}
    {%- for c in model.get('constraints', []) if c['type'] not in ('primary_key', 'unique') -%}
        {%- do model_constraints.append(c) -%}
    {%- endfor -%}
    {%- set rendered = adapter.render_raw_columns_constraints(raw_columns=columns)
        + adapter.render_raw_model_constraints(raw_constraints=model_constraints) -%}
    ( {{ rendered | join(',\n      ') }} )
{% endmacro %}

{#- The contract's keys of the model being built: a list of column lists, primary keys first. -#}
{% macro iwh_contract_keys(node) %}
    {%- set keys = [] -%}
    {%- for kind in ('primary_key', 'unique') -%}
        {%- for name, column in node['columns'].items() -%}
            {%- for c in column.get('constraints', []) if c['type'] == kind -%}
                {%- do keys.append({'kind': kind, 'columns': [name]}) -%}
            {%- endfor -%}
        {%- endfor -%}
        {%- for c in node.get('constraints', []) if c['type'] == kind -%}
            {%- do keys.append({'kind': kind, 'columns': c.get('columns') or []}) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(keys) }}
{% endmacro %}

{#- Post-hook: fail the model when a key of its enforced contract repeats. One query for all its keys;
    the error names the table, the key, one repeated value and how many rows carry it (of ``relation``,
    default the model's table: the table materialization checks the new rows before it writes them). A unique key
    leaves out rows with a NULL in it (as SQL's UNIQUE does); a primary key's columns are NOT NULL. -#}
{% macro iwh_check_contract_keys(relation=none) %}
    {%- if not execute or not model.get('contract', {}).get('enforced')
          or config.get('materialized') not in ('table', 'incremental') -%}
        {{ return('') }}
    {%- endif -%}
    {%- set keys = iwh_contract_keys(model) -%}
    {%- if not keys -%}{{ return('') }}{%- endif -%}
    {%- set relation = relation or iwh_key_check_relation(keys) -%}
    {%- set checks = [] -%}
    {%- for key in keys -%}
        {%- set quoted = [] -%}
        {%- for c in key['columns'] -%}{%- do quoted.append(adapter.quote(c)) -%}{%- endfor -%}
        {%- set check -%}
            select '{{ key['kind'] }} ({{ key['columns'] | join(', ') }})' as key_name,
                {% for q in quoted -%}
                    coalesce(cast({{ q }} as varchar), 'NULL'){{ " || ', ' || " if not loop.last }}
                {%- endfor %} as key_value,
                n
            from (
                select {{ quoted | join(', ') }}, count(*) as n
                from {{ relation }}
                {% if key['kind'] == 'unique' -%}
                where {{ quoted | join(' is not null and ') }} is not null
                {% endif -%}
                group by {{ quoted | join(', ') }}
                having count(*) > 1
                limit 1
            )
        {%- endset -%}
        {%- do checks.append(check) -%}
    {%- endfor -%}
    select error('duplicate key in {{ this.schema }}.{{ this.identifier }}: ' || key_name || ' = ' || key_value
                 || ' in ' || n || ' rows')
    from ({{ checks | join('\n            union all\n') }}
          limit 1)
{% endmacro %}

{#- Which rows the key check reads: the whole table, except on an incremental run that replaced stored
    rows by that very key (delete+insert with unique_key = the contract's key). That run deleted every
    stored row whose key came in again and inserted its batch, so a key can only repeat inside the
    batch, which dbt keeps in its temporary relation until the commit: the check reads the day's rows,
    not the history that earlier runs checked (fct_receivables_daily: 12k rows, not 4.5M). -#}
{% macro iwh_key_check_relation(keys) %}
    {%- if config.get('materialized') != 'incremental' or config.get('incremental_strategy') != 'delete+insert' -%}
        {{ return(this) }}
    {%- endif -%}
    {%- set unique_key = config.get('unique_key') -%}
    {%- set unique_key = [unique_key] if unique_key is string else (unique_key or []) -%}
    {%- if keys | length != 1 or keys[0]['columns'] | sort != unique_key | sort -%}
        {{ return(this) }}
    {%- endif -%}
    {#- dbt-duckdb names the batch <identifier>__dbt_tmp<timestamp>, a temporary table of this connection -#}
    {%- set found = run_query("select table_name from duckdb_tables() where temporary and starts_with(table_name, '"
                              ~ this.identifier ~ "__dbt_tmp') order by table_name desc limit 1") -%}
    {%- if found.rows | length == 0 -%}{{ return(this) }}{%- endif -%}
    {{ return(api.Relation.create(identifier=found.rows[0][0], type='table')) }}
{% endmacro %}
