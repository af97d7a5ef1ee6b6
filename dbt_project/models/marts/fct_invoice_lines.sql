-- One row per invoice line from every provider that itemises its invoices.
{{ config(contract={'enforced': true}) }}

with lines as (
    select * from {{ ref('int_invoice_lines_unioned') }}
)

select
    provider || ':' || invoice_id || ':' || line_id as line_key,
    provider || ':' || invoice_id as invoice_key,
    provider,
    invoice_id,
    line_id,
    line_number,
    product_id,
    description,
    quantity,
    unit_price,
    discount_amount,
    tax_amount,
    line_total,
    currency
from lines
