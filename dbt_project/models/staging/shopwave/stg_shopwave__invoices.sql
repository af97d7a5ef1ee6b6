-- Shopwave supplier invoices: a supplier invoices one of the merchant's stores for goods [SEED 002].
-- From the merchant's point of view they are bills to pay, so direction = 'payable'; the billed party
-- (customer_id) is the store (storeId), the issuer (store_id) is the supplier store (supplierStoreId).
-- Totals arrive as strings in pence ("2500.0" = 25.00 GBP): from_minor_units divides exactly.
-- completeDate is the "Supplier Invoice Date" [SEED] (issued_at); addedDate, when the invoice was
-- entered, is the only change time the API has (updated_at). No due date exists: the issue date.
-- Shopwave invoices have no status field: source_status is 'complete' when completeDate is set, else
-- 'incomplete' (both are owed: there is no cancelled or void invoice in Shopwave).
-- Receivables rule (simulators/shopwave.py truth()): supplier invoices have NO payment history in
-- Shopwave (basket transactions are consumer payments with no invoice link), so per customer and GBP:
-- invoiced = sum(total_amount) of every invoice, paid = 0 (amount_paid_reported is NULL: the source
-- states nothing, and no payment row links to an invoice), open = invoiced. No credits: credit_amount 0.
with source as (
    select * from {{ source('raw_shopwave', 'invoices') }}
),

renamed as (
    select
        'shopwave' as provider,
        id as invoice_id,
        coalesce(reference, id) as invoice_number,
        storeId as customer_id,
        cast(null as varchar) as customer_name,
        supplierStoreId as store_id,
        completeDate as issued_at,
        cast(completeDate as date) as issue_date,
        cast(completeDate as date) as due_date,
        'GBP' as currency,
        {{ from_minor_units('totalPrice') }} as subtotal_amount,
        {{ from_minor_units('totalVat') }} as tax_amount,
        {{ from_minor_units('totalIncVat') }} as total_amount,
        {{ money(0) }} as credit_amount,
        cast(null as decimal(38, 6)) as amount_paid_reported,
        case when completeDate is null then 'incomplete' else 'complete' end as source_status,
        'payable' as direction,
        addedDate as updated_at,
        _extracted_at as extracted_at
    from source
)

select * from renamed
