-- IDH purchase orders. The list's `total` can differ from the ext detail's (seed: 957600 vs
-- 855591.66 for one PO: the distributor confirms at other quantities and IDH does not recalculate), so
-- the ext values are the order's amount; the list total is kept as list_total_amount for audit.
-- `date` arrives as ISO +07:00 (UTC here); the ext detail's created_on_date is the WIB calendar date.
{{ config(**iwh_incremental_staging('raw_idh', 'orders', 'po', 'order_id')) }}
with source as (
    select * from {{ iwh_changed_rows(source('raw_idh', 'orders'), 'po') }}
),

renamed as (
    select
        'idh' as provider,
        po as order_id,
        po as order_number,
        store_id as customer_id,
        store_name as customer_name,
        nullif(distributor_id, '') as store_id,
        nullif(store_code, '') as store_code,
        date as ordered_at,
        coalesce(created_on_date, cast(timezone('Asia/Jakarta', date) as date)) as order_date,
        'IDR' as currency,
        {{ money('ext_total') }} as total_amount,
        {{ money('total') }} as list_total_amount,
        status as source_status,
        order_status,
        nullif(status_confirmedorder, '') as status_confirmedorder,
        nullif(delivery_status, '') as delivery_status,
        nullif(cancel_reason, '') as cancel_reason,
        _extracted_at as extracted_at
    from source
)

select * from renamed
