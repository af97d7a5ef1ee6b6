-- One row per Payments[] entry of a DealPOS invoice (sent with the IncludePayments: true header),
-- unnested from the same raw row, so every payment links to its invoice. Refunds after a return are
-- negative amounts. Payment dates have no offset: tenant local time, Asia/Jakarta (WIB, UTC+7).
-- DealPOS payments carry no status of their own: source_status is null.
{{ config(**iwh_incremental_staging('raw_dealpos', 'invoices', '"ID"', 'invoice_id')) }}
with source as (
    select * from {{ iwh_changed_rows(source('raw_dealpos', 'invoices'), '"ID"') }}
),

unnested as (
    select
        "ID" as invoice_id,
        unnest(json_transform("Payments",
            '[{"ID":"VARCHAR","Date":"VARCHAR","Amount":"DECIMAL(38,6)","Method":"VARCHAR"}]'
        )) as payment
    from source
),

renamed as (
    select
        'dealpos' as provider,
        payment.ID as payment_id,
        invoice_id,
        timezone('Asia/Jakarta', cast(payment.Date as timestamp)) as paid_at,
        cast(timezone('Asia/Jakarta', cast(payment.Date as timestamp)) as date) as payment_date,
        {{ money('payment.Amount') }} as amount,
        'IDR' as currency,
        payment.Method as method,
        cast(null as varchar) as source_status
    from unnested
)

select * from renamed
