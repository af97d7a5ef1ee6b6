-- IDH invoices (tagihan). Receivables rule (the simulator's truth() documents the same): over the
-- invoices created in the window, invoiced = sum(total_amount) (IDH has no cancelled/void invoice
-- state), paid = sum(amount_paid_reported) = the detail's list_payments[].total (successful payments;
-- expired QRIS attempts are not in it), open = invoiced - paid - credit_amount, where credit_amount is
-- the DMS return credit `total_retur` ("total tagihan akan dikurangi nilai retur", seed).
-- IDH gives no tax split (tax_amount 0; prices are taken as tax-inclusive) and no modification time.
-- created_on / due_date are WIB calendar dates (DD-MM-YYYY); issued_at is WIB midnight of created_on, in UTC.
-- list_payments (like list_payment) is absent until something is paid: coalesce to 0.
{{ config(**iwh_incremental_staging('raw_idh', 'invoices', 'id', 'invoice_id')) }}
with source as (
    select * from {{ iwh_changed_rows(source('raw_idh', 'invoices'), 'id') }}
),

renamed as (
    select
        'idh' as provider,
        id as invoice_id,
        invoice_number,
        store_id as customer_id,
        store_name as customer_name,
        nullif(pickup_id, '') as store_id,
        timezone('Asia/Jakarta', cast(created_on as timestamp)) as issued_at,
        created_on as issue_date,
        coalesce(due_date, created_on) as due_date,
        'IDR' as currency,
        {{ money('subtotal') }} as subtotal_amount,
        {{ money(0) }} as tax_amount,
        {{ money('subtotal') }} as total_amount,
        {{ money('coalesce(total_retur, 0)') }} as credit_amount,
        {{ money("coalesce(list_sum(list_transform(json_transform(list_payments, '[{\"total\":\"DECIMAL(38,6)\"}]'), lambda p: p.total)), 0)") }} as amount_paid_reported,
        status as source_status,
        'receivable' as direction,
        cast(null as timestamptz) as updated_at,
        _extracted_at as extracted_at,
        is_paid,
        is_pay_manually,
        is_select_payment,
        list_payment,
        nullif(retur_dms_id, '') as retur_dms_id,
        order_ids_formatted,
        nullif(salesman_id, '') as salesman_id,
        nullif(pickup_name, '') as pickup_name
    from source
)

select * from renamed
