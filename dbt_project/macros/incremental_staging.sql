{#- Incremental staging: a staging model that reads one raw table re-stages only the raw rows that
    changed since it last ran, instead of re-reading (and re-parsing the nested JSON of) the whole year
    every day.

    What changed is known from the load: every raw row carries the _batch_id of the extraction that
    wrote it, and a row only ever changes by being replaced with a row of a newer batch, loaded once
    (meta.loaded_batches). meta.staged_batches records, per model and per version of the model's code,
    the batches it has staged. A run:
      1. pre-hook (iwh_unstage_changed): deletes the staged rows of every key that has a row of a batch
         not staged yet, or that is no longer in the raw table at all;
      2. the model's select reads only the raw rows of those keys (iwh_changed_rows) and
         appends what it makes of them (incremental_strategy append: the keys were freed in step 1, a
         key with no rows left, such as an invoice whose new version has no lines, stays deleted);
      3. post-hook (iwh_record_staged): records the raw table's batches as staged.
    All three run in the model's transaction. A new version of the model's file (its checksum is part of
    the record) has staged nothing yet, so its first run re-stages every row; so does a fresh table or
    --full-refresh, which the pipeline's full build uses when the project changed (dbt.FULL_BUILD): a
    macro a model uses may have changed what its rows stage to, or its columns (an incremental run with
    an enforced contract fails on a changed column list).

    Usage, in a staging model:
        {{ config(**iwh_incremental_staging('raw_p', 'entity', 'raw key column', 'staged key')) }}
        with source as (select * from {{ iwh_changed_rows(source('raw_p', 'entity'), 'raw key column') }}), ... -#}

{% macro iwh_incremental_staging(source_name, table_name, raw_key, staged_key) %}
    {%- set raw = "source('" ~ source_name ~ "', '" ~ table_name ~ "')" -%}
    {{ return({
        'materialized': 'incremental',
        'incremental_strategy': 'append',
        'on_schema_change': 'fail',
        'pre_hook': ["{{ iwh_unstage_changed(" ~ raw ~ ", '" ~ raw_key ~ "', '" ~ staged_key ~ "') }}"],
        'post_hook': ["{{ iwh_record_staged(" ~ raw ~ ") }}"],
    }) }}
{% endmacro %}

{% macro iwh_staged_batches() %}meta.staged_batches{% endmacro %}

{#- The version of the model that staged a batch: the checksum of the model's file. -#}
{% macro iwh_model_version() %}
    {{ return(model['checksum']['checksum']) }}
{% endmacro %}

{#- The batches this version of the model has staged (a subquery). -#}
{% macro iwh_staged_batch_ids() %}
    (select batch_id from {{ iwh_staged_batches() }}
     where model = '{{ this.identifier }}' and version = '{{ iwh_model_version() }}')
{% endmacro %}

{#- The keys that have a raw row of a batch this version of the model has not staged yet (a subquery). -#}
{% macro iwh_changed_keys(raw, raw_key) %}
    (select {{ raw_key }} from {{ raw }} where coalesce(_batch_id, '') not in {{ iwh_staged_batch_ids() }})
{% endmacro %}

{#- Raw rows of the changed keys (every row on a full build). The raw table holds one row per key (the
    load merges by key); reading every row of a changed key keeps that true here even if it did not
    hold, so the model's key check sees it. -#}
{% macro iwh_changed_rows(raw, raw_key) %}
    {%- if is_incremental() -%}
        (select * from {{ raw }} where {{ raw_key }} in {{ iwh_changed_keys(raw, raw_key) }})
    {%- else -%}
        {{ raw }}
    {%- endif -%}
{% endmacro %}

{#- on-run-start (dbt_project.yml): the record table exists before any model runs (models run
    concurrently, and two transactions creating it would conflict). -#}
{% macro iwh_create_staged_batches() %}
    create schema if not exists meta;
    create table if not exists {{ iwh_staged_batches() }} (
        model varchar, version varchar, batch_id varchar, staged_at timestamptz);
{% endmacro %}

{% macro iwh_unstage_changed(raw, raw_key, staged_key) %}
    {% if is_incremental() -%}
    delete from {{ this }}
    where cast({{ staged_key }} as varchar) in (
            select cast({{ raw_key }} as varchar) from {{ iwh_changed_keys(raw, raw_key) }})
        or cast({{ staged_key }} as varchar) not in (select cast({{ raw_key }} as varchar) from {{ raw }});
    {%- endif %}
{% endmacro %}

{#- Append-only (concurrent models append, none deletes): a batch is recorded once per model version. -#}
{% macro iwh_record_staged(raw) %}
    insert into {{ iwh_staged_batches() }}
    select distinct '{{ this.identifier }}', '{{ iwh_model_version() }}', coalesce(_batch_id, ''), now()
    from {{ raw }}
    where coalesce(_batch_id, '') not in {{ iwh_staged_batch_ids() }}
{% endmacro %}
