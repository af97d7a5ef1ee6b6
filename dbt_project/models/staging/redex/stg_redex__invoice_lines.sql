-- One row per MainInvoice.Items[] entry of a REDEX invoice (from the detail, unnested from the same raw
-- row). Each item is one matched spot trade: TransactionId is unique and links to stg_redex__orders.
-- The product is the REC's generating device (DeviceName, an older item field); REDEX bills tax and fees
-- on the header only, so line tax and discount are 0.
with source as (
    select * from {{ source('raw_redex', 'invoices') }}
),

unnested as (
    select
        InvoiceNumber as invoice_id,
        upper(CurrencyCode) as currency,
        unnest(json_transform(MainInvoice -> '$.Items',
            '[{"TransactionId":"VARCHAR","DeviceName":"VARCHAR","Description":"VARCHAR","Quantity":"DECIMAL(38,6)","UnitPrice":"DECIMAL(38,6)","TotalPrice":"DECIMAL(38,6)"}]'
        )) as item,
        generate_subscripts(json_transform(MainInvoice -> '$.Items', '["JSON"]'), 1) as line_number
    from source
),

renamed as (
    select
        'redex' as provider,
        invoice_id,
        item.TransactionId as line_id,
        cast(line_number as integer) as line_number,
        item.DeviceName as product_id,
        item.Description as description,
        {{ money('item.Quantity') }} as quantity,
        {{ money('item.UnitPrice') }} as unit_price,
        {{ money(0) }} as discount_amount,
        {{ money(0) }} as tax_amount,
        {{ money('item.TotalPrice') }} as line_total,
        currency
    from unnested
)

select * from renamed
