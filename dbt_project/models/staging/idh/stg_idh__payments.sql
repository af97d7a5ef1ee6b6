-- IDH payment history (both payment_type variants: digital and manually). One row per payment event,
-- including expired digital attempts ("Waktu pembayaran habis", amount 0). Only a calendar date is given
-- (DD-MM-YYYY, WIB): paid_at is null. Receivables take "paid" from the invoice's list_payments
-- (stg_idh__invoices.amount_paid_reported); over the same invoices the successful rows here sum to it.
with source as (
    select * from {{ source('raw_idh', 'payments') }}
),

renamed as (
    select
        'idh' as provider,
        id as payment_id,
        nullif(invoice_id, '') as invoice_id,
        cast(null as timestamptz) as paid_at,
        payment_date,
        {{ money('total_payment') }} as amount,
        'IDR' as currency,
        paymentchannel_name as method,
        status_translate as source_status,
        {{ money('outstanding_balance') }} as outstanding_balance,
        store_id as customer_id,
        is_correct_manually,
        is_disbursed,
        note,
        _extracted_at as extracted_at
    from source
)

select * from renamed
