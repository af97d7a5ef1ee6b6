{#- The table materialization of this project's models on DuckDB: the model's table is replaced inside
    one transaction (drop, create, insert, the post-hooks' checks, commit) rather than built under a
    temporary name and swapped in by two renames, with the old table dropped in a transaction of its own
    afterwards.

    Why: DuckDB's DDL is transactional, so the swap buys nothing here. A failed insert or a failed check
    (contract_keys.sql raises from a post-hook) rolls the transaction back and the last good table stays,
    as it did with the swap. The swap cost every model six more statements (the renames, the searches for
    foreign keys and indexes that block a rename, the drop of the backup) and a second commit; the drop's
    commit is where DuckDB's automatic checkpoint most often fell, on the critical path of the build.
    Readers in other transactions keep seeing the old table until the commit (DuckDB's MVCC).

    This project declares no foreign keys and no indexes (contract_constraints.sql builds the contract
    without its keys), which is what the built-in materialization's extra steps are for. Only SQL models.

    The daily build writes only the rows that changed, for the large tables that say so (meta:
    {changed_rows_only: true}). When the pipeline's daily build runs (dbt.py sets IWH_SYNC_TABLES: the
    project is the one the last full build built), such a model, if its table exists and its enforced
    contract has a primary key, is computed in full into a temporary table, and only the difference is
    applied: the stored rows of every key whose rows differ (EXCEPT, all columns) or
    that is gone are deleted, and the new rows of those keys inserted. The table ends up with exactly the
    rows a rebuild would give, its constraints checked on every inserted row and its key check (post-hook)
    over the whole table; a repeated key or a null in a key column of the new rows fails the model, as
    a rebuild would, before anything is written. What is
    saved is the write: a scale-5 year's daily build rewrote about 1M rows of wide tables, which DuckDB
    compresses and writes at the commit or the next checkpoint, to change a few thousand. A small table
    is rewritten faster than its difference is found (two more queries per model): the daily step on a
    scale-5 year took 8.0-8.7 s with the seven large tables written this way, 8.2-10.3 s with every
    table, 8.5-10.5 s with none (four interleaved rounds). A manual
    `dbt build`, --full-refresh, a table whose columns differ from the select's, a model without a
    primary key or a table that does not exist yet: the table is rebuilt as above. -#}
{% materialization table, adapter="duckdb", supported_languages=['sql'] %}
  {%- set existing_relation = load_cached_relation(this) -%}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set grant_config = config.get('grants') -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  -- BEGIN happens here
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {%- set synced = iwh_sync_table(existing_relation, target_relation, compiled_code) -%}
  {%- if not synced %}
  {#- One statement, so the drop is inside the transaction the statement begins (dbt's drop_relation
      runs without beginning one): the old table (or the view the model was before) is gone only if
      the new table is made. No cascade: anything that depended on it would stop the build loudly. -#}
  {% call statement('main') -%}
    {%- if existing_relation is not none %}
    drop {{ existing_relation.type }} if exists {{ existing_relation }};
    {%- endif %}
    {{ create_table_as(False, target_relation, compiled_code) }}
  {%- endcall %}
  {%- if existing_relation is not none -%}
    {%- do adapter.cache_dropped(existing_relation) -%}
  {%- endif %}
  {%- endif %}

  {{ run_hooks(post_hooks, inside_transaction=True) }}

  {% set should_revoke = should_revoke(existing_relation, full_refresh_mode=True) %}
  {% do apply_grants(target_relation, grant_config, should_revoke=should_revoke) %}
  {% do persist_docs(target_relation, model) %}

  -- COMMIT happens here
  {{ adapter.commit() }}

  {{ run_hooks(post_hooks, inside_transaction=False) }}

  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}

{#- The daily build's write of a table model: only the rows that changed (see above). Returns true when
    it wrote the table that way (the statement 'main' ran), false when the table must be rebuilt. -#}
{% macro iwh_sync_table(existing_relation, target_relation, compiled_code) %}
    {%- if existing_relation is none or existing_relation.type != 'table' or should_full_refresh()
          or (env_var('IWH_SYNC_TABLES', '') if execute else '') != '1'
          or not (config.get('meta') or {}).get('changed_rows_only')
          or not model.get('contract', {}).get('enforced') -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set pk = iwh_contract_keys(model) | selectattr('kind', 'equalto', 'primary_key') | list -%}
    {%- if not pk or not pk[0]['columns'] -%}{{ return(false) }}{%- endif -%}
    {%- set quoted = [] -%}
    {%- for c in pk[0]['columns'] -%}{%- do quoted.append(adapter.quote(c)) -%}{%- endfor -%}
    {%- set key = '(' ~ quoted | join(', ') ~ ')' -%}
    {%- set new = adapter.quote(this.identifier ~ '__iwh_new') -%}
    {%- set changed = adapter.quote(this.identifier ~ '__iwh_changed') -%}
    {#- The select must still match the contract, as create_table_as checks on a rebuild. -#}
    {{- get_assert_columns_equivalent(compiled_code) -}}
    {%- call statement('iwh_new') -%}
        create or replace temp table {{ new }} as {{ compiled_code }}
    {%- endcall -%}
    {#- Same column names, order and types as the stored table, or rebuild it. -#}
    {%- set columns_of -%}
        select column_index, column_name, data_type from duckdb_columns() where database_name = '{db}'
            and schema_name = '{schema}' and table_name = '{table}'
    {%- endset -%}
    {%- set stored = columns_of.replace('{db}', target_relation.database).replace('{schema}', target_relation.schema)
                     .replace('{table}', target_relation.identifier) -%}
    {%- set made = columns_of.replace('{db}', 'temp').replace('{schema}', 'main')
                   .replace('{table}', this.identifier ~ '__iwh_new') -%}
    {%- set differs = run_query('select count(*) from ((' ~ made ~ ' except all ' ~ stored ~ ') union all ('
                                ~ stored ~ ' except all ' ~ made ~ '))').columns[0].values()[0] -%}
    {%- if differs != 0 -%}
        {%- do run_query('drop table ' ~ new) -%}
        {{ return(false) }}
    {%- endif -%}
    {#- A key repeated in the new rows fails the model before anything is written (with EXCEPT's set
        semantics, a row repeated whole would otherwise be written once), and so does a null in a key
        column (the key's NOT NULL would fail the rebuild's insert; here IN and NOT IN would pass over
        the row). -#}
    {% call statement('main') -%}
        {%- for c in quoted %}
        select error('NOT NULL constraint failed: {{ this.schema }}.{{ this.identifier }}.{{ pk[0]['columns'][loop.index0] }}')
        from {{ new }} where {{ c }} is null limit 1;
        {%- endfor %}
        {{ iwh_check_contract_keys(new) }};
        create or replace temp table {{ changed }} as
            select distinct {{ quoted | join(', ') }}
            from (select * from {{ new }} except select * from {{ target_relation }});
        delete from {{ target_relation }}
        where {{ key }} in (select {{ key }} from {{ changed }})
            or {{ key }} not in (select {{ key }} from {{ new }});
        insert into {{ target_relation }} by name
            select * from {{ new }} where {{ key }} in (select {{ key }} from {{ changed }});
        drop table {{ changed }};
        drop table {{ new }};
    {%- endcall %}
    {{ return(true) }}
{% endmacro %}
