-- One row per invoice from every provider (first cut; widened by the marts issue).
with invoices as (
    select * from {{ ref('int_invoices_unioned') }}
),

status_map as (
    select * from {{ ref('status_map') }}
)

select
    i.provider || ':' || i.invoice_id as invoice_key,
    i.provider,
    i.invoice_id,
    i.invoice_number,
    i.customer_id,
    i.store_id,
    i.issue_date,
    i.due_date,
    i.currency,
    i.subtotal_amount,
    i.tax_amount,
    i.total_amount,
    i.credit_amount,
    i.amount_paid_reported as amount_paid,
    i.source_status,
    s.canonical_status,
    i.direction,
    i.updated_at
from invoices i
left join status_map s
    on s.provider = i.provider and s.source_status = i.source_status
