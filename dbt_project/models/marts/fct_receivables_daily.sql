-- The open balance of every open invoice as of each day: one row per day and invoice whose balance
-- that day is not zero (receivables and payables; filter on direction). Incremental: a daily run adds
-- the days after the last one stored, up to as_of_date (var, default today); it never rebuilds
-- history, not even under --full-refresh (full_refresh=false: the pipeline's full build refreshes the
-- rest of the project); to rebuild it, drop the table and build again. The first build starts at the
-- earliest issue date. Balances come from int_invoice_balances_historized, aging from aging_bucket().
-- The contract's constraints (not null, accepted values) are checked by DuckDB on each insert, so a run
-- checks the days it adds; ensure_contract_constraints() gives an older table those constraints.
{{ config(
    materialized='incremental',
    unique_key=['balance_date', 'invoice_key'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    full_refresh=false,
    contract={'enforced': true},
    pre_hook="{{ ensure_contract_constraints() }}"
) }}

with invoices as (
    select * from {{ ref('int_invoices_balanced') }}
),

balances as (
    select * from {{ ref('int_invoice_balances_historized') }}
    where open_balance <> 0
),

bounds as (
    select
        {% if is_incremental() -%}
        coalesce((select max(balance_date) + 1 from {{ this }}), (select min(valid_from) from balances))
        {%- else -%}
        (select min(valid_from) from balances)
        {%- endif %} as first_day,
        {{ as_of_date() }} as last_day
),

days as (
    select cast(unnest(generate_series(cast(first_day as timestamp), cast(last_day as timestamp),
        interval 1 day)) as date) as balance_date
    from bounds
    where first_day <= last_day
)

select
    d.balance_date,
    i.invoice_key,
    i.provider,
    i.invoice_id,
    i.direction,
    i.customer_key,
    i.customer_id,
    i.currency,
    i.issue_date,
    i.due_date,
    cast(d.balance_date - i.due_date as integer) as days_past_due,
    {{ aging_bucket('d.balance_date - i.due_date') }} as aging_bucket,
    b.open_balance,
    b.open_balance < 0 as is_overpaid
from days d
join balances b
    on d.balance_date >= b.valid_from and (b.valid_to is null or d.balance_date < b.valid_to)
join invoices i on i.invoice_key = b.invoice_key
