-- An itemised invoice's lines add up to its total within the provider's rounding (var
-- amount_tolerance). Providers that charge fee and tax on the header only (var header_only_charges:
-- REDEX) are held to what the contract can show: the lines (before the fee) are at least the subtotal
-- (after the fee). Invoices without lines (IDH invoices whose orders are outside the extracted history)
-- are not checked.
with lines as (
    select invoice_key, sum(line_total) as lines_total, count(*) as line_count
    from {{ ref('fct_invoice_lines') }}
    group by invoice_key
)

select i.invoice_key, i.provider, i.subtotal_amount, i.total_amount, l.lines_total, l.line_count
from {{ ref('fct_invoices') }} i
join lines l on l.invoice_key = i.invoice_key
where case
    when i.provider in ('{{ var("header_only_charges") | join("', '") }}')
        then l.lines_total < i.subtotal_amount - {{ amount_tolerance('i.provider') }}
    else abs(l.lines_total - i.total_amount) > {{ amount_tolerance('i.provider') }}
end
