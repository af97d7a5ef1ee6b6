-- Akinon parties. OMS knows two kinds, from two raw tables of this provider (a union, not a join):
--   * stock locations (stores and warehouses, GET /api/v1/oms/stocklocations/list-simple/):
--     customer_type 'stock_location', named; their address is only an id (no city here);
--   * customers: OMS holds them only as ids (orders.customer); names, e-mails and phones live in
--     Omnitron/Commerce. customer_type 'customer', one row per distinct id, the rest null.
-- The key is (customer_type, customer_id): the two id spaces are separate in OMS.
-- Akinon OMS has no payments and no returns endpoints, so there is no stg_akinon__payments/returns.
with stock_locations as (
    select * from {{ source('raw_akinon', 'stock_locations') }}
),

orders as (
    select * from {{ source('raw_akinon', 'orders') }}
),

renamed as (
    select
        'akinon' as provider,
        id as customer_id,
        name as customer_name,
        'stock_location' as customer_type,
        cast(null as varchar) as city,
        cast(null as varchar) as email,
        cast(null as varchar) as phone
    from stock_locations

    union all

    select distinct
        'akinon' as provider,
        customer_id,
        cast(null as varchar) as customer_name,
        'customer' as customer_type,
        cast(null as varchar) as city,
        cast(null as varchar) as email,
        cast(null as varchar) as phone
    from orders
    where customer_id is not null
)

select * from renamed
