-- One row per invoiceitem_set entry of an Akinon invoice (unnested from the same raw row).
{{ config(**iwh_incremental_staging('raw_akinon', 'invoices', 'id', 'invoice_id')) }}
with source as (
    select * from {{ iwh_changed_rows(source('raw_akinon', 'invoices'), 'id') }}
),

unnested as (
    select
        id as invoice_id,
        unnest(json_transform(invoiceitem_set,
            '[{"id":"VARCHAR","order_item":"VARCHAR","tax_amount":"DECIMAL(38,6)","discount_amount":"DECIMAL(38,6)","total_amount":"DECIMAL(38,6)","net_amount":"DECIMAL(38,6)"}]'
        )) as item,
        generate_subscripts(json_transform(invoiceitem_set, '["JSON"]'), 1) as line_number
    from source
),

renamed as (
    select
        'akinon' as provider,
        invoice_id,
        item.id as line_id,
        cast(line_number as integer) as line_number,
        item.order_item as product_id,
        'order item ' || item.order_item as description,
        {{ money(1) }} as quantity,
        {{ money('item.total_amount') }} as unit_price,
        {{ money('coalesce(item.discount_amount, 0)') }} as discount_amount,
        {{ money('coalesce(item.tax_amount, 0)') }} as tax_amount,
        {{ money('item.net_amount') }} as line_total,
        'TRY' as currency
    from unnested
)

select * from renamed
