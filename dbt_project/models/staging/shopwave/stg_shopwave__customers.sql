-- The parties of Shopwave supplier invoices, from two sources stacked (a union, not a join): the
-- merchant's stores (GET /store: the billed party, customer_id of stg_shopwave__invoices) and the
-- suppliers' stores (GET /supplier/store: the issuer, store_id of stg_shopwave__invoices).
with stores as (
    select * from {{ source('raw_shopwave', 'stores') }}
),

supplier_stores as (
    select * from {{ source('raw_shopwave', 'supplier_stores') }}
),

renamed as (
    select
        'shopwave' as provider,
        id as customer_id,
        name as customer_name,
        'store' as customer_type,
        city,
        email,
        phone
    from stores

    union all

    select
        'shopwave' as provider,
        id as customer_id,
        name as customer_name,
        'supplier_store' as customer_type,
        city,
        email,
        phone
    from supplier_stores
)

select * from renamed
