-- IDH invoice lines on the stg_<p>__invoice_lines contract. IDH invoices have no line items (seed:
-- an invoice lists order_ids only); an invoice bills whole orders, so its lines ARE its orders' ext
-- products. This is IDH's one staging model that is not 1:1 with a source: it joins two IDH staging
-- models on order_id (unique in stg_idh__invoice_orders: an order is billed once), because the entity
-- exists only as that join. Lines appear once both the invoice and its orders are loaded (orders are
-- placed 2-5 days before the invoice: a history that starts mid-stream lacks the first invoices' lines).
with order_lines as (
    select * from {{ ref('stg_idh__order_lines') }}
),

invoice_orders as (
    select * from {{ ref('stg_idh__invoice_orders') }}
),

renamed as (
    select
        l.provider,
        io.invoice_id,
        l.line_id,
        cast(row_number() over (partition by io.invoice_id
                                order by io.order_position, l.line_number) as integer) as line_number,
        l.product_id,
        l.description,
        l.quantity,
        l.unit_price,
        l.discount_amount,
        l.tax_amount,
        l.line_total,
        l.currency,
        l.order_id,
        l.sku,
        l.source_status
    from order_lines l
    inner join invoice_orders io on io.order_id = l.order_id
)

select * from renamed
