-- The open balance of every invoice through time: one row per invoice and interval [valid_from,
-- valid_to) during which its balance stayed the same (valid_to NULL: still so). Built from a ledger of
-- dated changes whose sum is the invoice's current open_balance (int_invoices_balanced):
--   + total_amount on the issue date;
--   - each counted payment allocated to it, on its payment date;
--   - the paid amount the header reports beyond those payment records (header-only providers such as
--     REDEX and Akinon, or payments outside the extracted history), on the day the header last changed
--     (updated_at: the source's state is known true from then);
--   - credit_amount (returns/credit notes), on the latest linked return's date, else updated_at's day.
-- No change is dated before the issue date. Void invoices have no ledger (they were never owed).
with invoices as (
    select * from {{ ref('int_invoices_balanced') }}
    where not is_void
),

payments as (
    select * from {{ ref('int_payments_allocated') }}
    where allocation_status = 'allocated' and counts_as_paid
),

changes as (
    select invoice_key, issue_date as change_date, total_amount as delta
    from invoices

    union all

    select p.invoice_key, greatest(coalesce(p.payment_date, i.issue_date), i.issue_date), -p.amount
    from payments p
    join invoices i on i.invoice_key = p.invoice_key

    union all

    select invoice_key,
        greatest(coalesce(cast(updated_at as date), issue_date), issue_date),
        -(amount_paid - payments_amount)
    from invoices
    where amount_paid <> payments_amount

    union all

    select invoice_key,
        greatest(coalesce(last_return_date, cast(updated_at as date), issue_date), issue_date),
        -credit_amount
    from invoices
    where credit_amount <> 0
),

daily as (
    select invoice_key, change_date, sum(delta) as delta
    from changes
    group by invoice_key, change_date
)

select
    invoice_key,
    change_date as valid_from,
    lead(change_date) over (partition by invoice_key order by change_date) as valid_to,
    cast(sum(delta) over (partition by invoice_key order by change_date
        rows between unbounded preceding and current row) as decimal(38, 6)) as open_balance
from daily
