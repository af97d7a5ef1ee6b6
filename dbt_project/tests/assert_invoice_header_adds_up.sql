-- Every invoice header adds up: subtotal + tax = total within the provider's rounding (var
-- amount_tolerance; REDEX rounds tax and Total separately).
select invoice_key, provider, subtotal_amount, tax_amount, total_amount
from {{ ref('fct_invoices') }}
where abs(subtotal_amount + tax_amount - total_amount) > {{ amount_tolerance('provider') }}
