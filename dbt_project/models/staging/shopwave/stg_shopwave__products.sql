-- Shopwave products. The price lives in price instances (a JSON map keyed by instance id, price a
-- string in pence, VAT inclusive retail): a price change is a new instance with a later activeDate, so
-- the current price is the instance with the latest activeDate already active when extracted. ISO
-- activeDate strings of one format sort chronologically, so the struct list sorts on them first.
{%- set latest_price -%}
list_sort(list_filter(
    map_values(json_transform(instances, '"MAP(VARCHAR, STRUCT(activeDate VARCHAR, price DECIMAL(18, 6)))"')),
    lambda x: cast(x.activeDate as timestamptz) <= _extracted_at
))[-1].price
{%- endset %}

with source as (
    select * from {{ source('raw_shopwave', 'products') }}
),

renamed as (
    select
        'shopwave' as provider,
        id as product_id,
        barcode as sku,
        name as product_name,
        {{ from_minor_units(latest_price) }} as unit_price,
        'GBP' as currency
    from source
)

select * from renamed
