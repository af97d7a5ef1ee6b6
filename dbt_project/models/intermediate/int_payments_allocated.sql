-- Payments allocated to the invoices they pay, where the provider gives the link (payment.invoice_id).
-- One row per payment record. A payment is allocated whole to its linked invoice (instalments are
-- several payments of one invoice; a refund is a negative payment of it): amounts are never split or
-- capped here, so what an invoice was paid stays exact and an overpayment stays visible.
--   allocation_status: 'allocated' (the invoice is in the warehouse), 'invoice_not_loaded' (linked to an
--   invoice outside the extracted history), 'unlinked' (the source gives no invoice, e.g. Shopwave till
--   transactions).
--   counts_as_paid: the payment moved money (canonical paid or refunded); failed/expired attempts don't.
--   instalment_number / cumulative_paid_amount: order and running total of the counted payments of the
--   invoice (by payment date, time, id).
with payments as (
    select * from {{ ref('int_payments_unioned') }}
),

invoices as (
    select provider, invoice_id from {{ ref('int_invoices_unioned') }}
),

status_map as (
    select provider, source_status, canonical_status from {{ ref('status_map') }} where entity = 'payments'
),

joined as (
    select
        p.*,
        s.canonical_status,
        coalesce(s.canonical_status in {{ counted_payment_statuses() }}, false) as counts_as_paid,
        case
            when p.invoice_id is null then 'unlinked'
            when i.invoice_id is null then 'invoice_not_loaded'
            else 'allocated'
        end as allocation_status
    from payments p
    left join invoices i on i.provider = p.provider and i.invoice_id = p.invoice_id
    -- A source without payment statuses (source_status NULL) is looked up as '(none)' in the seed.
    left join status_map s on s.provider = p.provider and s.source_status = coalesce(p.source_status, '(none)')
)

select
    provider || ':' || payment_id as payment_key,
    provider,
    payment_id,
    case when allocation_status = 'allocated' then provider || ':' || invoice_id end as invoice_key,
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
    case when allocation_status = 'allocated' and counts_as_paid then
        cast(row_number() over (
            partition by provider, invoice_id, allocation_status = 'allocated' and counts_as_paid
            order by payment_date, paid_at, payment_id) as integer)
    end as instalment_number,
    case when allocation_status = 'allocated' and counts_as_paid then
        cast(sum(amount) over (
            partition by provider, invoice_id, allocation_status = 'allocated' and counts_as_paid
            order by payment_date, paid_at, payment_id
            rows between unbounded preceding and current row) as decimal(38, 6))
    end as cumulative_paid_amount
from joined
