-- A business customer (customer_xref) is one party per provider in dim_customers: if two parties of
-- one provider shared a customer_key, two id spaces of that provider would collide in the seed.
select provider, customer_key, count(*) as parties
from {{ ref('dim_customers') }}
where customer_key is not null
group by provider, customer_key
having count(*) > 1
