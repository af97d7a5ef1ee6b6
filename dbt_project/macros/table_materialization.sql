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
    without its keys), which is what the built-in materialization's extra steps are for. Only SQL models. -#}
{% materialization table, adapter="duckdb", supported_languages=['sql'] %}
  {%- set existing_relation = load_cached_relation(this) -%}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set grant_config = config.get('grants') -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  -- BEGIN happens here
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

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

  {{ run_hooks(post_hooks, inside_transaction=True) }}

  {% set should_revoke = should_revoke(existing_relation, full_refresh_mode=True) %}
  {% do apply_grants(target_relation, grant_config, should_revoke=should_revoke) %}
  {% do persist_docs(target_relation, model) %}

  -- COMMIT happens here
  {{ adapter.commit() }}

  {{ run_hooks(post_hooks, inside_transaction=False) }}

  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
