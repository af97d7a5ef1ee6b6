-- The balance history of an invoice ends where fct_invoices says it stands now, and void invoices
-- have no history.
with last_interval as (
    select invoice_key, open_balance
    from {{ ref('int_invoice_balances_historized') }}
    where valid_to is null
)

select i.invoice_key, i.is_void, i.open_balance, h.open_balance as history_balance
from {{ ref('fct_invoices') }} i
full join last_interval h on h.invoice_key = i.invoice_key
where (i.is_void and h.invoice_key is not null)
   or (not i.is_void and h.open_balance is distinct from i.open_balance)
   or i.invoice_key is null
