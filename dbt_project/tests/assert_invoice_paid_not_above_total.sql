-- What an invoice was paid never exceeds its total by more than the provider's rounding tolerance
-- (var amount_tolerance). Void invoices count nowhere and are left out.
select invoice_key, provider, total_amount, amount_paid
from {{ ref('fct_invoices') }}
where not is_void
  and amount_paid > total_amount + {{ amount_tolerance('provider') }}
