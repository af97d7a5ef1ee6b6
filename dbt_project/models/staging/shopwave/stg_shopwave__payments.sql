-- Shopwave basket transactions: consumer payments at the merchant's tills (CASH, CARD, CHEQUE, VOUCHER,
-- APP), amount in integer pence -> GBP exactly. A refund is a negative transaction on the same basket
-- [INF]. The tip (also pence) is a gratuity, not part of the sale, and is left out of amount.
-- They are NOT payments of supplier invoices: Shopwave has no payment history for supplier invoices
-- and a transaction links only to its basket, so invoice_id is NULL. Transactions carry no status:
-- source_status says 'refund' (negative amount) or 'payment'.
{{ config(**iwh_incremental_staging('raw_shopwave', 'transactions', 'id', 'payment_id')) }}
with source as (
    select * from {{ iwh_changed_rows(source('raw_shopwave', 'transactions'), 'id') }}
),

renamed as (
    select
        'shopwave' as provider,
        id as payment_id,
        cast(null as varchar) as invoice_id,
        completeDate as paid_at,
        cast(completeDate as date) as payment_date,
        {{ from_minor_units('amount') }} as amount,
        'GBP' as currency,
        type as method,
        case when amount < 0 then 'refund' else 'payment' end as source_status
    from source
)

select * from renamed
