-- Aging of open balances as of var as_of_date (default today), by provider, direction, customer and
-- currency: what is not yet due ("current") and what is 1-30, 31-60, 61-90 and 90+ days past due.
-- Amounts never mix currencies. Another day's aging, without rebuilding anything:
--   select provider, direction, customer_key, customer_id, currency, aging_bucket, sum(open_balance)
--   from marts.fct_receivables_daily where balance_date = date '2025-03-01' group by all;
-- or rebuild this report for that day: dbt build -s rpt_ar_aging --vars '{as_of_date: 2025-03-01}'.
{{ config(contract={'enforced': true}) }}

with balances as (
    select * from {{ ref('fct_receivables_daily') }}
    where balance_date = {{ as_of_date() }}
),

aged as (
    select *, {{ aging_bucket('days_past_due') }} as bucket
    from balances
)

select
    {{ as_of_date() }} as as_of_date,
    provider,
    direction,
    customer_key,
    customer_id,
    currency,
    cast(count(*) as integer) as open_invoice_count,
    cast(sum(open_balance) as decimal(38, 6)) as open_balance,
    cast(sum(open_balance) filter (where bucket = 'current') as decimal(38, 6)) as current_amount,
    cast(sum(open_balance) filter (where bucket = '1-30') as decimal(38, 6)) as past_due_1_30_amount,
    cast(sum(open_balance) filter (where bucket = '31-60') as decimal(38, 6)) as past_due_31_60_amount,
    cast(sum(open_balance) filter (where bucket = '61-90') as decimal(38, 6)) as past_due_61_90_amount,
    cast(sum(open_balance) filter (where bucket = '90+') as decimal(38, 6)) as past_due_over_90_amount,
    max(days_past_due) as max_days_past_due
from aged
group by provider, direction, customer_key, customer_id, currency
