-- Akinon OMS invoices. Money and rates arrive as strings ("399.00"); the invoice header carries no
-- total, so the totals are the sums of its own lines (invoiceitem_set, same row: not a join).
-- Akinon OMS has no payment records: an order with a payment_type was paid at checkout, so the
-- header "reports" it paid; open-account orders (payment_type null) are unpaid. No due date exists:
-- the issue date is used. Currency: the OMS tenant's currency, TRY.
{{ config(**iwh_incremental_staging('raw_akinon', 'invoices', 'id', 'invoice_id')) }}
with source as (
    select * from {{ iwh_changed_rows(source('raw_akinon', 'invoices'), 'id') }}
),

renamed as (
    select
        'akinon' as provider,
        id as invoice_id,
        number as invoice_number,
        order_customer_id as customer_id,
        trim(coalesce(address ->> '$.first_name', '') || ' ' || coalesce(address ->> '$.last_name', '')) as customer_name,
        channel_id as store_id,
        created_date as issued_at,
        cast(created_date as date) as issue_date,
        cast(created_date as date) as due_date,
        'TRY' as currency,
        {{ money("list_sum(list_transform(json_transform(invoiceitem_set, '[{\"net_amount\":\"DECIMAL(38,6)\",\"tax_amount\":\"DECIMAL(38,6)\"}]'), lambda x: x.net_amount - coalesce(x.tax_amount, 0)))") }} as subtotal_amount,
        {{ money("list_sum(list_transform(json_transform(invoiceitem_set, '[{\"tax_amount\":\"DECIMAL(38,6)\"}]'), lambda x: coalesce(x.tax_amount, 0)))") }} as tax_amount,
        {{ money("list_sum(list_transform(json_transform(invoiceitem_set, '[{\"net_amount\":\"DECIMAL(38,6)\"}]'), lambda x: x.net_amount))") }} as total_amount,
        {{ money(0) }} as credit_amount,
        case when status = 'cancelled' then {{ money(0) }}
             when order_payment_type is not null
             then {{ money("list_sum(list_transform(json_transform(invoiceitem_set, '[{\"net_amount\":\"DECIMAL(38,6)\"}]'), lambda x: x.net_amount))") }}
             else {{ money(0) }} end as amount_paid_reported,
        status as source_status,
        'receivable' as direction,
        modified_date as updated_at,
        _extracted_at as extracted_at
    from source
)

select * from renamed
