-- Akinon products. OMS has no product list: products arrive embedded in every order item
-- (orders.orderitem_set[].product), so a product appears once per order item that sold it. This model
-- unnests the items of the same raw table (not a join) and keeps one row per product: the item of the
-- latest order (order modified_date, then the highest order item id). unit_price is that item's unit
-- `price`; OMS prices vary by order (price lists, promotions), there is no master price here (the product
-- master is Omnitron's /api/i1/products/).
with source as (
    select * from {{ source('raw_akinon', 'orders') }}
),

unnested as (
    select
        modified_date as order_modified_at,
        unnest(json_transform(orderitem_set,
            '[{"id":"BIGINT","price":"DECIMAL(38,6)","price_currency":"VARCHAR","product":{"id":"VARCHAR","sku":"VARCHAR","name":"VARCHAR"}}]'
        )) as item
    from source
),

renamed as (
    select
        'akinon' as provider,
        item.product.id as product_id,
        item.product.sku as sku,
        item.product.name as product_name,
        {{ money('item.price') }} as unit_price,
        upper(item.price_currency) as currency
    from unnested
    qualify row_number() over (
        partition by item.product.id order by order_modified_at desc, item.id desc) = 1
)

select * from renamed
