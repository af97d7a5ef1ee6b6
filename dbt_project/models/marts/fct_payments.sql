-- One row per payment record (received or, for payables, made), allocated to its invoice where the
-- provider gives the link (int_payments_allocated).
{{ config(contract={'enforced': true}) }}

with payments as (
    select * from {{ ref('int_payments_allocated') }}
)

select
    payment_key,
    provider,
    payment_id,
    invoice_key,
    invoice_id,
    paid_at,
    payment_date,
    amount,
    currency,
    method,
    source_status,
    canonical_status,
    counts_as_paid,
    allocation_status,
    instalment_number,
    cumulative_paid_amount
from payments
