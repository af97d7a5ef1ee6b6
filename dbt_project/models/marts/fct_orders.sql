-- One row per order (sales order / purchase order / spot order) from every provider that has orders.
{{ config(contract={'enforced': true}) }}

with orders as (
    select * from {{ ref('int_orders_unioned') }}
),

status_map as (
    select provider, source_status, canonical_status from {{ ref('status_map') }} where entity = 'orders'
),

xref as (
    select provider, customer_id, customer_key from {{ ref('customer_xref') }}
)

select
    o.provider || ':' || o.order_id as order_key,
    o.provider,
    o.order_id,
    o.order_number,
    x.customer_key,
    o.customer_id,
    o.store_id,
    o.ordered_at,
    o.order_date,
    o.currency,
    o.total_amount,
    o.source_status,
    s.canonical_status
from orders o
left join status_map s on s.provider = o.provider and s.source_status = o.source_status
left join xref x on x.provider = o.provider and x.customer_id = o.customer_id
