-- One row per invoice from every provider (receivable and payable), with its customer, status, what
-- was paid and what is open. The balances follow int_invoices_balanced. Extraction bookkeeping
-- (extracted_at) stays out: re-extracting the same data leaves the mart unchanged, row for row.
{{ config(contract={'enforced': true}) }}

with invoices as (
    select * from {{ ref('int_invoices_balanced') }}
)

select
    invoice_key,
    provider,
    invoice_id,
    invoice_number,
    customer_key,
    customer_id,
    customer_name,
    store_id,
    issued_at,
    issue_date,
    due_date,
    currency,
    subtotal_amount,
    tax_amount,
    total_amount,
    credit_amount,
    amount_paid,
    amount_paid_basis,
    payment_count,
    payments_amount,
    open_balance,
    is_overpaid,
    is_void,
    source_status,
    canonical_status,
    direction,
    updated_at
from invoices
