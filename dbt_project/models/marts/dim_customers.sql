-- One row per party a provider bills or sells through: customers, stores, outlets, stock locations,
-- supplier stores (int_customers_unioned). customer_key is the business customer (customer_xref seed):
-- the same customer has a different local id at every provider, the seed maps them all to one key.
-- Parties that are not business customers (outlets, stock locations, supplier stores) have none.
{{ config(contract={'enforced': true}) }}

with customers as (
    select * from {{ ref('int_customers_unioned') }}
),

xref as (
    select * from {{ ref('customer_xref') }}
)

select
    c.provider || ':' || c.customer_type || ':' || c.customer_id as customer_party_key,
    c.provider,
    c.customer_id,
    c.customer_type,
    x.customer_key,
    coalesce(c.customer_name, x.customer_name) as customer_name,
    x.customer_name as business_customer_name,
    c.city,
    c.email,
    c.phone
from customers c
left join xref x on x.provider = c.provider and x.customer_id = c.customer_id
