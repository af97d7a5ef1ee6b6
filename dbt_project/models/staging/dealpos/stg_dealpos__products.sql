-- One row per product variant (the thing an invoice line sells: Variants[].VariantID), unnested from
-- the product's own Variants[]. UnitPrice is the list price in IDR.
with source as (
    select * from {{ source('raw_dealpos', 'products') }}
),

unnested as (
    select
        "Name" as name,
        unnest(json_transform("Variants",
            '[{"ID":"VARCHAR","Code":"VARCHAR","Model":"VARCHAR","UnitPrice":"DECIMAL(38,6)"}]'
        )) as variant
    from source
),

renamed as (
    select
        'dealpos' as provider,
        variant.ID as product_id,
        variant.Code as sku,
        trim(name || ' ' || coalesce(variant.Model, '')) as product_name,
        {{ money('variant.UnitPrice') }} as unit_price,
        'IDR' as currency
    from unnested
)

select * from renamed
