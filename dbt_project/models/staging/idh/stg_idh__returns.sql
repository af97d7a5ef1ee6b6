-- IDH return/exchange requests (retur). The API links them to no invoice or order: the money effect on
-- receivables is the invoice's total_retur (stg_idh__invoices.credit_amount), so this amount is
-- informational and must not be subtracted again. amount = approved quantity x buying price (statuses
-- with request_status 'approved'; the PATCH example spells it 'approve'); requested_amount = quantity x
-- buying price. Epoch-ms dates arrive with 0 = none (null here). The API has no status text: the flags
-- is_canceled / is_processed / is_confirmed are passed through as the first that holds.
with source as (
    select * from {{ source('raw_idh', 'returns') }}
),

items as (
    select
        *,
        json_transform(items,
            '[{"buying_price":"DECIMAL(38,6)","quantity":"DECIMAL(38,6)","statuses":[{"request_status":"VARCHAR","confirmed_quantity":"DECIMAL(38,6)"}]}]') as item_list
    from source
),

renamed as (
    select
        'idh' as provider,
        id as return_id,
        cast(null as varchar) as invoice_id,
        cast(null as varchar) as order_id,
        store_id as customer_id,
        created_on_milli as returned_at,
        cast(created_on_milli as date) as return_date,
        {{ money("coalesce(list_sum(list_transform(item_list, lambda i: i.buying_price * coalesce(list_sum(list_transform(list_filter(i.statuses, lambda s: s.request_status in ('approved', 'approve')), lambda s: s.confirmed_quantity)), 0))), 0)") }} as amount,
        {{ money("coalesce(list_sum(list_transform(item_list, lambda i: i.buying_price * i.quantity)), 0)") }} as requested_amount,
        'IDR' as currency,
        case when is_canceled then 'canceled'
             when is_processed then 'processed'
             when is_confirmed then 'confirmed'
             else 'open' end as source_status,
        principal_name,
        confirmed_on_milli as confirmed_at,
        processed_on_milli as processed_at,
        canceled_on_milli as canceled_at,
        _extracted_at as extracted_at
    from items
)

select * from renamed
