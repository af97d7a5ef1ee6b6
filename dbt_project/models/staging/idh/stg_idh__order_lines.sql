-- One row per product of an IDH order, from the ext detail (items[] per principal -> products[]).
-- IDH invoices have no lines of their own: an invoice covers whole orders (stg_idh__invoice_orders),
-- so an invoice's lines are its orders' lines. This model has the stg_<p>__invoice_lines contract plus
-- order_id; invoice_id is null here (an order does not name its invoice) and stg_idh__invoice_lines
-- sets it through stg_idh__invoice_orders. The ext products carry no product_id: it is looked up in the plain detail's
-- order_detail[] of the same row by ordered_product_id (a list lookup in one row, not a join).
{{ config(**iwh_incremental_staging('raw_idh', 'orders', 'po', 'order_id')) }}
with source as (
    select * from {{ iwh_changed_rows(source('raw_idh', 'orders'), 'po') }}
),

principals as (
    select
        po as order_id,
        status as order_status,
        json_transform(detail -> '$.order_detail',
            '[{"ordered_product_id":"VARCHAR","product_id":"VARCHAR"}]') as order_detail,
        unnest(json_transform(ext -> '$.items',
            '[{"principal":{"name":"VARCHAR","principal_id":"VARCHAR"},"products":[{"orderedproduct_id":"VARCHAR","internal_code":"VARCHAR","name":"VARCHAR","measure_unit":"VARCHAR","price":"DECIMAL(38,6)","quantity":"DECIMAL(38,6)","discount_percent":"DECIMAL(38,6)","discount_fixed":"DECIMAL(38,6)","sub_total":"DECIMAL(38,6)","status_confirmedproduct":"VARCHAR"}]}]'
        )) as item,
        generate_subscripts(json_transform(ext -> '$.items', '["JSON"]'), 1) as principal_number
    from source
),

products as (
    select
        order_id,
        order_detail,
        principal_number,
        item.principal as principal,
        unnest(item.products) as product,
        generate_subscripts(item.products, 1) as product_number
    from principals
),

renamed as (
    select
        'idh' as provider,
        cast(null as varchar) as invoice_id,
        order_id,
        product.orderedproduct_id as line_id,
        cast(row_number() over (partition by order_id order by principal_number, product_number) as integer) as line_number,
        list_filter(order_detail, lambda d: d.ordered_product_id = product.orderedproduct_id)[1].product_id as product_id,
        nullif(product.internal_code, '') as sku,
        product.name as description,
        product.measure_unit,
        principal.name as principal_name,
        {{ money('product.quantity') }} as quantity,
        {{ money('product.price') }} as unit_price,
        {{ money('product.price * product.quantity - product.sub_total') }} as discount_amount,
        {{ money(0) }} as tax_amount,
        {{ money('product.sub_total') }} as line_total,
        'IDR' as currency,
        nullif(product.status_confirmedproduct, '') as source_status
    from products
)

select * from renamed
