-- One row per invoice with its canonical status, business customer, what was paid and what is open.
--   canonical_status: the status_map seed (entity 'invoices') applied to source_status; NULL when the
--     seed lacks the status, which fails the marts' not-null constraint (never silently guessed).
--   is_void: cancelled / expired / refunded documents count nowhere: nothing invoiced, paid or open.
--   amount_paid: what the header reports paid (amount_paid_reported) when the source states it; else
--     the sum of the payment records allocated to the invoice (int_payments_allocated); else 0.
--   open_balance = total - paid - credits (returns/credit notes); 0 for void invoices. Negative only
--     when the invoice was overpaid (is_overpaid).
-- These are the receivables rules of every provider's simulator (simulators/<provider>.py docstrings).
with invoices as (
    select * from {{ ref('int_invoices_unioned') }}
),

status_map as (
    select provider, source_status, canonical_status from {{ ref('status_map') }} where entity = 'invoices'
),

xref as (
    select provider, customer_id, customer_key from {{ ref('customer_xref') }}
),

payments as (
    select
        provider,
        invoice_id,
        count(*) as payment_count,
        sum(amount) as payments_amount,
        max(payment_date) as last_payment_date
    from {{ ref('int_payments_allocated') }}
    where allocation_status = 'allocated' and counts_as_paid
    group by provider, invoice_id
),

returns as (
    -- The latest return linked to the invoice dates its credit (credit_amount itself is the header's).
    select provider, invoice_id, max(return_date) as last_return_date
    from {{ ref('int_returns_unioned') }}
    where invoice_id is not null
    group by provider, invoice_id
),

joined as (
    select
        i.*,
        x.customer_key,
        s.canonical_status,
        coalesce(s.canonical_status in {{ void_statuses() }}, false) as is_void,
        cast(coalesce(p.payment_count, 0) as integer) as payment_count,
        cast(coalesce(p.payments_amount, 0) as decimal(38, 6)) as payments_amount,
        p.last_payment_date,
        r.last_return_date,
        cast(coalesce(i.amount_paid_reported, p.payments_amount, 0) as decimal(38, 6)) as amount_paid,
        case
            when i.amount_paid_reported is not null then 'reported'
            when p.payments_amount is not null then 'payments'
            else 'none'
        end as amount_paid_basis
    from invoices i
    left join status_map s on s.provider = i.provider and s.source_status = i.source_status
    left join xref x on x.provider = i.provider and x.customer_id = i.customer_id
    left join payments p on p.provider = i.provider and p.invoice_id = i.invoice_id
    left join returns r on r.provider = i.provider and r.invoice_id = i.invoice_id
)

select
    provider || ':' || invoice_id as invoice_key,
    *,
    cast(case when is_void then 0 else total_amount - amount_paid - credit_amount end
        as decimal(38, 6)) as open_balance,
    not is_void and total_amount - amount_paid - credit_amount < 0 as is_overpaid
from joined
