-- REDEX REC spot-exchange transactions as orders (one order = one transaction in REDEX's list; the
-- TransactionId is the key, the exchange's OrderId the order number). The exchange is anonymous: the
-- counterparty is only known on the invoice (Payer/Payee), so customer_id is null here; the market that
-- executed the order stands for the store. Amount = Quantity x MatchedPrice once matched, else x the
-- limit Price. Status is {Value, Description} (string form tolerated as for invoices).
with source as (
    select * from {{ source('raw_redex', 'orders') }}
),

renamed as (
    select
        'redex' as provider,
        TransactionId as order_id,
        cast(OrderId as varchar) as order_number,
        cast(null as varchar) as customer_id,
        MarketName as store_id,
        CreatedTime as ordered_at,
        cast(CreatedTime as date) as order_date,
        upper(CurrencyCode) as currency,
        {{ money('coalesce(MatchedPrice, Price) * Quantity') }} as total_amount,
        coalesce(StatusValue, Status ->> '$') as source_status
    from source
)

select * from renamed
