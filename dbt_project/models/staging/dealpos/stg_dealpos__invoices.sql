-- DealPOS invoices (POS sales, IDR) on the unified invoice contract (staging/README.md).
-- The header has Amount (what the customer owes: the lines' Sales, after discounts, PPN included)
-- but no tax or paid total: both are sums over the same row's Variants[] / Payments[] (an unnest of
-- the row's own JSON, not a join). Payments[] holds refunds as negative amounts.
-- DealPOS has three statuses: Status (Active/Cancelled = void), Payment (Paid/Partial/Unpaid) and
-- Fulfillment; source_status is Status when the invoice is voided, else the Payment state.
-- Dates: Date is the tenant-local sell date (a calendar date, kept as issue_date); Due uses the
-- 0001-01-01 null sentinel (already null here) for non-credit sales: the issue date is used then.
--
-- Receivables rule (the simulator's truth() uses the same): over invoices with Status = 'Active',
--   invoiced = total_amount, paid = amount_paid_reported (sum of Payments[].Amount),
--   open = total_amount - amount_paid_reported - credit_amount (ReturnAmount: value credited by returns).
-- Voided invoices count nowhere (they never carry payments or returns).
{{ config(**iwh_incremental_staging('raw_dealpos', 'invoices', '"ID"', 'invoice_id')) }}
with source as (
    select * from {{ iwh_changed_rows(source('raw_dealpos', 'invoices'), '"ID"') }}
),

renamed as (
    select
        'dealpos' as provider,
        "ID" as invoice_id,
        "Number" as invoice_number,
        "CustomerID" as customer_id,
        "Customer" as customer_name,
        -- Invoice rows name the outlet, not its id (= stg_dealpos__customers.customer_name of the outlet).
        "Outlet" as store_id,
        "Created" as issued_at,
        "Date" as issue_date,
        coalesce("Due", "Date") as due_date,
        'IDR' as currency,
        {{ money("\"Amount\" - coalesce(list_sum(list_transform(json_transform(\"Variants\", '[{\"Tax\":\"DECIMAL(38,6)\"}]'), lambda x: coalesce(x.Tax, 0))), 0)") }} as subtotal_amount,
        {{ money("coalesce(list_sum(list_transform(json_transform(\"Variants\", '[{\"Tax\":\"DECIMAL(38,6)\"}]'), lambda x: coalesce(x.Tax, 0))), 0)") }} as tax_amount,
        {{ money('"Amount"') }} as total_amount,
        {{ money('coalesce("ReturnAmount", 0)') }} as credit_amount,
        {{ money("coalesce(list_sum(list_transform(json_transform(\"Payments\", '[{\"Amount\":\"DECIMAL(38,6)\"}]'), lambda x: x.Amount)), 0)") }} as amount_paid_reported,
        case when "Status" = 'Cancelled' then "Status" else "Payment" end as source_status,
        'receivable' as direction,
        cast(null as timestamptz) as updated_at,
        _extracted_at as extracted_at
    from source
)

select * from renamed
