{#- The one money type of the warehouse: exact, wide enough for IDR sums and REDEX's 6 decimals. -#}
{% macro money(expr) -%}
    cast({{ expr }} as decimal(38, 6))
{%- endmacro %}

{#- Minor units (pence, cents) to major units, explicitly and exactly. -#}
{% macro from_minor_units(expr, digits=2) -%}
    cast(cast({{ expr }} as decimal(38, 6)) / {{ 10 ** digits }} as decimal(38, 6))
{%- endmacro %}
