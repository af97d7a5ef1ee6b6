-- One row per product of every provider that lists products (int_products_unioned).
{{ config(contract={'enforced': true}) }}

with products as (
    select * from {{ ref('int_products_unioned') }}
)

select
    provider || ':' || product_id as product_key,
    provider,
    product_id,
    sku,
    product_name,
    unit_price,
    currency
from products
