-- One row per invoiceItems entry of a Shopwave supplier invoice (unnested from the same raw row).
-- invoiceItems is a map keyed by invoiceItemId; the item object carries no id of its own [SEED], so the
-- key is the line id. price is the unit price in pence excluding VAT, vatPercentage a fraction (0.2 =
-- 20 %). The API gives no per-line VAT: it is price x quantity x rate rounded to whole pence (half up,
-- DuckDB's round on positive decimals), which is how the invoice's totalVat adds up; so the lines'
-- line_total sums to the invoice's total_amount exactly. The JSON in the raw column is written with
-- sorted keys, so line_number follows the numeric item id, not the text order.
with source as (
    select * from {{ source('raw_shopwave', 'invoices') }}
),

unnested as (
    select
        id as invoice_id,
        -- json_transform (not a cast) ignores item keys we do not read (barcode, note, accountId)
        unnest(map_entries(json_transform(invoiceItems,
            '"MAP(VARCHAR, STRUCT(productId VARCHAR, name VARCHAR, price DECIMAL(18, 6), quantity INTEGER, vatPercentage DECIMAL(9, 6)))"'
        )), recursive := true)
    from source
),

renamed as (
    select
        'shopwave' as provider,
        invoice_id,
        key as line_id,
        cast(row_number() over (partition by invoice_id order by cast(key as bigint)) as integer) as line_number,
        productId as product_id,
        name as description,
        {{ money('quantity') }} as quantity,
        {{ from_minor_units('price') }} as unit_price,
        {{ money(0) }} as discount_amount,
        {{ from_minor_units('round(price * quantity * vatPercentage, 0)') }} as tax_amount,
        {{ from_minor_units('price * quantity + round(price * quantity * vatPercentage, 0)') }} as line_total,
        'GBP' as currency
    from unnested
)

select * from renamed
