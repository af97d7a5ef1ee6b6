-- Which orders an IDH invoice covers (order_ids[] of the invoice, unnested from the same row). With
-- stg_idh__order_lines this gives IDH's invoice lines (IDH invoices have no line items themselves).
with source as (
    select * from {{ source('raw_idh', 'invoices') }}
),

renamed as (
    select
        'idh' as provider,
        id as invoice_id,
        unnest(json_transform(order_ids, '["VARCHAR"]')) as order_id,
        cast(generate_subscripts(json_transform(order_ids, '["VARCHAR"]'), 1) as integer) as order_position
    from source
)

select * from renamed
