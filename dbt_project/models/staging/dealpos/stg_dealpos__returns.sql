-- DealPOS sales returns (Invoice/Return). InvoiceID/ReferenceNumber name the original invoice; Amount
-- is the value credited (the same value appears on that invoice as ReturnAmount = credit_amount, which
-- is what reduces the receivable: do not subtract these rows again). Date is the local return date.
with source as (
    select * from {{ source('raw_dealpos', 'returns') }}
),

renamed as (
    select
        'dealpos' as provider,
        "ID" as return_id,
        "InvoiceID" as invoice_id,
        cast(null as varchar) as order_id,
        "CustomerID" as customer_id,
        "Created" as returned_at,
        "Date" as return_date,
        {{ money('"Amount"') }} as amount,
        'IDR' as currency,
        "Status" as source_status
    from source
)

select * from renamed
