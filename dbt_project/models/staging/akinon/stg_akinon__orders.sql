-- Akinon OMS orders (GET /api/v1/oms/orders/), one row per order. Like invoices, the order header
-- carries no total: the total is the sum of its own items' net_amount (orderitem_set, same row: not a
-- join). The currency is the items' price_currency, lower case in OMS ("try"), upper-cased here.
-- source_status is the state's enum_value ("100" Waiting, "400" Approved, "450" Cancelled): the state
-- name is localised, the code is not. store_id is the sales channel, as in stg_akinon__invoices.
{{ config(**iwh_incremental_staging('raw_akinon', 'orders', 'id', 'order_id')) }}
with source as (
    select * from {{ iwh_changed_rows(source('raw_akinon', 'orders'), 'id') }}
),

renamed as (
    select
        'akinon' as provider,
        id as order_id,
        number as order_number,
        customer_id,
        channel_id as store_id,
        date_placed as ordered_at,
        cast(date_placed as date) as order_date,
        upper(coalesce(orderitem_set ->> '$[0].price_currency', 'try')) as currency,
        {{ money("list_sum(list_transform(json_transform(orderitem_set, '[{\"net_amount\":\"DECIMAL(38,6)\"}]'), lambda x: x.net_amount))") }} as total_amount,
        state_enum_value as source_status
    from source
)

select * from renamed
