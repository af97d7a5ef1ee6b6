-- DealPOS parties: customers (GET Customer) and the outlets that sell (GET Outlet), one row each.
-- Two raw tables of the same provider stacked (a union, not a join). Empty strings mean "none".
with customers_source as (
    select * from {{ source('raw_dealpos', 'customers') }}
),

outlets_source as (
    select * from {{ source('raw_dealpos', 'outlets') }}
),

customers_renamed as (
    select
        'dealpos' as provider,
        "ID" as customer_id,
        "Name" as customer_name,
        'customer' as customer_type,
        nullif("City", '') as city,
        nullif("Email", '') as email,
        coalesce(nullif("Mobile", ''), nullif("Phone", '')) as phone
    from customers_source
),

outlets_renamed as (
    select
        'dealpos' as provider,
        "ID" as customer_id,
        "Name" as customer_name,
        'outlet' as customer_type,
        nullif("City", '') as city,
        nullif("Email", '') as email,
        nullif("Phone", '') as phone
    from outlets_source
),

renamed as (
    select * from customers_renamed
    union all
    select * from outlets_renamed
)

select * from renamed
