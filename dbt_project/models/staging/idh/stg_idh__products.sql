-- IDH products seen in orders and returns (product detail by id; the list endpoint cannot enumerate
-- the catalogue: at most 20 items). internal_code is the distributor's SKU and may be blank.
with source as (
    select * from {{ source('raw_idh', 'products') }}
),

renamed as (
    select
        'idh' as provider,
        product_id,
        nullif(internal_code, '') as sku,
        name as product_name,
        {{ money('price') }} as unit_price,
        'IDR' as currency,
        measure_unit,
        principal as principal_name,
        description,
        _extracted_at as extracted_at
    from source
)

select * from renamed
