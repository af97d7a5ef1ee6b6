-- REDEX invoices: the list (swept once per TransactionType) merged with each invoice's detail.
-- Status: a string (2024-03 shape, with StatusDescription) or {Value, Description} (2024-10), per row;
-- raw keeps it as JSON text: StatusValue is Status.Value for objects, else the JSON string is read.
-- Direction: the TransactionType variant that listed the row. The customer is the counterparty company,
-- by RegistrationNumber: the Payer of a receivable (it owes us), the Payee of a payable (we owe it).
-- Money (decimal(18,6) JSON numbers, landed exactly): total_amount = Total (cents, present in both shapes);
-- subtotal_amount = MainInvoice.PayerSubTotal (SubTotal - TotalFee: after REDEX's fee, before tax);
-- tax_amount = MainInvoice PayerTaxAmount + PayeeTaxAmount. REDEX rounds tax and total separately, so
-- subtotal + tax (= TotalReceivable) may differ from Total by < 0.01 (seed: 1148.4135 + 91.87 = 1240.2835,
-- Total 1240.29).
-- Payments: REDEX has no payment, credit-note or return endpoint; the nearest data are Status and PaidDate.
-- Receivables rule (simulators/redex.py docstring; the marts reproduce it from these columns):
--   only direction = 'receivable'; void (not invoiced, nothing paid or open) = Cancelled, Expired, Refunded;
--   invoiced = total_amount of the others; paid = amount_paid_reported = Total when the status is Paid or
--   OfflineManual, else 0 (the partial statuses carry no amount); credit_amount = 0; open = invoiced - paid.
-- Timestamps are UTC ("Date time utc format"; the 2024-03 shape omits the Z). The 2024-10 IssuedDate is
-- the issue day at midnight; DueDate is the end of the due day (23:59:59.9999999).
with source as (
    select * from {{ source('raw_redex', 'invoices') }}
),

renamed as (
    select
        'redex' as provider,
        InvoiceNumber as invoice_id,
        InvoiceNumber as invoice_number,
        case when TransactionType = 'AccountsPayable' then PayeeRegistrationNumber
             else PayerRegistrationNumber end as customer_id,
        case when TransactionType = 'AccountsPayable' then PayeeCompanyName
             else PayerCompanyName end as customer_name,
        WhiteLabelName as store_id,
        IssuedDate as issued_at,
        cast(IssuedDate as date) as issue_date,
        cast(coalesce(DueDate, IssuedDate) as date) as due_date,
        upper(CurrencyCode) as currency,
        {{ money('MainInvoicePayerSubTotal') }} as subtotal_amount,
        {{ money('coalesce(MainInvoicePayerTaxAmount, 0) + coalesce(MainInvoicePayeeTaxAmount, 0)') }} as tax_amount,
        {{ money('Total') }} as total_amount,
        {{ money(0) }} as credit_amount,
        case when coalesce(StatusValue, Status ->> '$') in ('Paid', 'OfflineManual') then {{ money('Total') }}
             else {{ money(0) }} end as amount_paid_reported,
        coalesce(StatusValue, Status ->> '$') as source_status,
        case TransactionType when 'AccountsPayable' then 'payable'
                             when 'AccountsReceivable' then 'receivable' end as direction,
        UpdatedTime as updated_at,
        _extracted_at as extracted_at
    from source
)

select * from renamed
