{#- The day the receivables marts are "as of": var as_of_date (YYYY-MM-DD), else the environment's
    IWH_AS_OF_DATE (what the pipeline's dbt step sets: a value outside --vars, so a new day does not
    void dbt's partial parse), else today (UTC). The environment is read only when the model runs, not
    while dbt parses it: dbt records the environment variables a file reads at parse time and parses the
    file again when one changes, which a new day would otherwise do every day (0.5 s). -#}
{% macro as_of_date() -%}
    {%- set day = var('as_of_date', none) or (env_var('IWH_AS_OF_DATE', '') if execute else '') -%}
    {%- if day -%}
        cast('{{ day }}' as date)
    {%- else -%}
        current_date
    {%- endif -%}
{%- endmacro %}

{#- Canonical statuses of documents that count nowhere (no amount invoiced, paid or open). -#}
{% macro void_statuses() -%}
    ('cancelled', 'expired', 'refunded')
{%- endmacro %}

{#- Canonical statuses of payment records that moved money (a refund is a negative amount). -#}
{% macro counted_payment_statuses() -%}
    ('paid', 'refunded')
{%- endmacro %}

{#- The aging bucket of an amount `days` past due: current (not yet due or due today), 1-30, 31-60,
    61-90, 90+. The edges belong to the lower bucket: 30 days is 1-30, 31 is 31-60, 91 is 90+. -#}
{% macro aging_bucket(days) -%}
    case
        when {{ days }} <= 0 then 'current'
        when {{ days }} <= 30 then '1-30'
        when {{ days }} <= 60 then '31-60'
        when {{ days }} <= 90 then '61-90'
        else '90+'
    end
{%- endmacro %}

{#- The tolerance of a provider's amounts (var amount_tolerance: provider -> amount, or default). -#}
{% macro amount_tolerance(provider_column) -%}
    {%- set tol = var('amount_tolerance') -%}
    case {{ provider_column }}
        {%- for p, v in tol.items() if p != 'default' %}
        when '{{ p }}' then cast({{ v }} as decimal(38, 6))
        {%- endfor %}
        else cast({{ tol.get('default', 0) }} as decimal(38, 6))
    end
{%- endmacro %}
