-- One row per Variants[] entry of a DealPOS invoice (unnested from the same raw row). DealPOS lines
-- have no id of their own: line_id is "<invoice ID>-<position>". Sales is the line's net value (after
-- its discount, PPN included); Tax is the PPN inside it.
{{ config(**iwh_incremental_staging('raw_dealpos', 'invoices', '"ID"', 'invoice_id')) }}
with source as (
    select * from {{ iwh_changed_rows(source('raw_dealpos', 'invoices'), '"ID"') }}
),

unnested as (
    select
        "ID" as invoice_id,
        unnest(json_transform("Variants",
            '[{"VariantID":"VARCHAR","Name":"VARCHAR","Quantity":"DECIMAL(38,6)","Price":"DECIMAL(38,6)","DiscountAmount":"DECIMAL(38,6)","Tax":"DECIMAL(38,6)","Sales":"DECIMAL(38,6)"}]'
        )) as item,
        generate_subscripts(json_transform("Variants", '["JSON"]'), 1) as line_number
    from source
),

renamed as (
    select
        'dealpos' as provider,
        invoice_id,
        invoice_id || '-' || cast(line_number as varchar) as line_id,
        cast(line_number as integer) as line_number,
        item.VariantID as product_id,
        item.Name as description,
        {{ money('item.Quantity') }} as quantity,
        {{ money('item.Price') }} as unit_price,
        {{ money('coalesce(item.DiscountAmount, 0)') }} as discount_amount,
        {{ money('coalesce(item.Tax, 0)') }} as tax_amount,
        {{ money('item.Sales') }} as line_total,
        'IDR' as currency
    from unnested
)

select * from renamed
