{#- The unified staging column contract (models/staging/README.md), column -> type, per entity.
    The intermediate unions select exactly these columns, cast to these types, so a staging model
    that misses a column fails loudly and one with an extra column cannot shift the union. -#}
{% macro staging_contract(entity) -%}
    {%- set money = 'decimal(38, 6)' -%}
    {%- set contracts = {
        'invoices': [
            ('provider', 'varchar'), ('invoice_id', 'varchar'), ('invoice_number', 'varchar'),
            ('customer_id', 'varchar'), ('customer_name', 'varchar'), ('store_id', 'varchar'),
            ('issued_at', 'timestamptz'), ('issue_date', 'date'), ('due_date', 'date'),
            ('currency', 'varchar'), ('subtotal_amount', money), ('tax_amount', money),
            ('total_amount', money), ('credit_amount', money), ('amount_paid_reported', money),
            ('source_status', 'varchar'), ('direction', 'varchar'), ('updated_at', 'timestamptz'),
            ('extracted_at', 'timestamptz')],
        'invoice_lines': [
            ('provider', 'varchar'), ('invoice_id', 'varchar'), ('line_id', 'varchar'),
            ('line_number', 'integer'), ('product_id', 'varchar'), ('description', 'varchar'),
            ('quantity', money), ('unit_price', money), ('discount_amount', money),
            ('tax_amount', money), ('line_total', money), ('currency', 'varchar')],
        'payments': [
            ('provider', 'varchar'), ('payment_id', 'varchar'), ('invoice_id', 'varchar'),
            ('paid_at', 'timestamptz'), ('payment_date', 'date'), ('amount', money),
            ('currency', 'varchar'), ('method', 'varchar'), ('source_status', 'varchar')],
        'customers': [
            ('provider', 'varchar'), ('customer_id', 'varchar'), ('customer_name', 'varchar'),
            ('customer_type', 'varchar'), ('city', 'varchar'), ('email', 'varchar'), ('phone', 'varchar')],
        'products': [
            ('provider', 'varchar'), ('product_id', 'varchar'), ('sku', 'varchar'),
            ('product_name', 'varchar'), ('unit_price', money), ('currency', 'varchar')],
        'orders': [
            ('provider', 'varchar'), ('order_id', 'varchar'), ('order_number', 'varchar'),
            ('customer_id', 'varchar'), ('store_id', 'varchar'), ('ordered_at', 'timestamptz'),
            ('order_date', 'date'), ('currency', 'varchar'), ('total_amount', money),
            ('source_status', 'varchar')],
        'returns': [
            ('provider', 'varchar'), ('return_id', 'varchar'), ('invoice_id', 'varchar'),
            ('order_id', 'varchar'), ('customer_id', 'varchar'), ('returned_at', 'timestamptz'),
            ('return_date', 'date'), ('amount', money), ('currency', 'varchar'),
            ('source_status', 'varchar')],
    } -%}
    {%- if entity not in contracts -%}
        {{ exceptions.raise_compiler_error("no staging contract for entity '" ~ entity ~ "'") }}
    {%- endif -%}
    {{ return(contracts[entity]) }}
{%- endmacro %}

{#- Union stg_<provider>__<entity> over the providers that offer the entity (var `entity_providers`),
    column for column on the staging contract. An entity no provider offers yet is an empty relation of
    the contract's columns, so the models downstream still build. -#}
{% macro union_staging(entity) -%}
    {%- set columns = staging_contract(entity) -%}
    {%- set offered = var('entity_providers').get(entity, []) -%}
    {%- if offered | length == 0 %}
    select
        {%- for name, type in columns %}
        cast(null as {{ type }}) as {{ name }}{{ "," if not loop.last }}
        {%- endfor %}
    where false
    {%- endif %}
    {%- for p in offered %}
    select
        {%- for name, type in columns %}
        cast({{ name }} as {{ type }}) as {{ name }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ ref('stg_' ~ p ~ '__' ~ entity) }}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
{%- endmacro %}
