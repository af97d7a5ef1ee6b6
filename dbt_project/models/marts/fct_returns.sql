-- One row per return (retur / refund document) from every provider that has returns. invoice_key is
-- set when the source links the return to an invoice that is in the warehouse.
{{ config(contract={'enforced': true}) }}

with returns as (
    select * from {{ ref('int_returns_unioned') }}
),

invoices as (
    select provider, invoice_id from {{ ref('int_invoices_unioned') }}
),

status_map as (
    select provider, source_status, canonical_status from {{ ref('status_map') }} where entity = 'returns'
),

xref as (
    select provider, customer_id, customer_key from {{ ref('customer_xref') }}
)

select
    r.provider || ':' || r.return_id as return_key,
    r.provider,
    r.return_id,
    case when i.invoice_id is not null then r.provider || ':' || r.invoice_id end as invoice_key,
    r.invoice_id,
    r.order_id,
    x.customer_key,
    r.customer_id,
    r.returned_at,
    r.return_date,
    r.amount,
    r.currency,
    r.source_status,
    s.canonical_status
from returns r
left join invoices i on i.provider = r.provider and i.invoice_id = r.invoice_id
left join status_map s on s.provider = r.provider and s.source_status = r.source_status
left join xref x on x.provider = r.provider and x.customer_id = r.customer_id
