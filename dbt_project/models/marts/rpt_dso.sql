-- Days sales outstanding per provider, currency and month, receivables only:
--   dso = open receivables at month end / credit sales in the month x days in the month.
-- Credit sales = totals of the non-void receivable invoices issued in the month (every invoice is a sale
-- on credit until paid). The current month ends at as_of_date (month to date: its days elapsed).
-- Open receivables at month end come from fct_receivables_daily. dso is NULL for a month without sales.
{{ config(contract={'enforced': true}) }}

with invoices as (
    select * from {{ ref('fct_invoices') }}
    where direction = 'receivable'
),

balances as (
    select * from {{ ref('fct_receivables_daily') }}
    where direction = 'receivable'
),

series as (
    select provider, currency, min(issue_date) as first_issue_date
    from invoices
    group by provider, currency
),

months as (
    select
        s.provider,
        s.currency,
        cast(m as date) as month_start,
        least(last_day(cast(m as date)), {{ as_of_date() }}) as period_end
    from series s,
        unnest(generate_series(date_trunc('month', s.first_issue_date),
            date_trunc('month', {{ as_of_date() }}), interval 1 month)) as t(m)
),

sales as (
    select provider, currency, date_trunc('month', issue_date) as month_start, sum(total_amount) as credit_sales
    from invoices
    where not is_void and issue_date <= {{ as_of_date() }}
    group by all
),

open_at_end as (
    select m.provider, m.currency, m.month_start, sum(b.open_balance) as open_receivables
    from months m
    join balances b
        on b.provider = m.provider and b.currency = m.currency and b.balance_date = m.period_end
    group by all
)

select
    m.provider,
    m.currency,
    m.month_start,
    m.period_end,
    cast(day(m.period_end) as integer) as days_in_period,
    cast(coalesce(s.credit_sales, 0) as decimal(38, 6)) as credit_sales,
    cast(coalesce(o.open_receivables, 0) as decimal(38, 6)) as open_receivables,
    cast(case when coalesce(s.credit_sales, 0) <> 0
        then coalesce(o.open_receivables, 0) / s.credit_sales * day(m.period_end) end
        as decimal(18, 2)) as dso_days
from months m
left join sales s on s.provider = m.provider and s.currency = m.currency and s.month_start = m.month_start
left join open_at_end o on o.provider = m.provider and o.currency = m.currency and o.month_start = m.month_start
