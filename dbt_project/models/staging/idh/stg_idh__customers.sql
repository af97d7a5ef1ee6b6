-- IDH stores (pelanggan): list rows (name, store_id) with their detail (addresses, DMS ids, store
-- types). City = the regency (kabupaten/kota) of the default address; emails/phones are null or lists.
with source as (
    select * from {{ source('raw_idh', 'customers') }}
),

addresses as (
    select
        *,
        list_filter(json_transform(address,
            '[{"is_default":"BOOLEAN","regency":"VARCHAR","province":"VARCHAR","phone":"VARCHAR","zip":"VARCHAR"}]'),
            lambda a: a.is_default)[1] as default_address
    from source
),

renamed as (
    select
        'idh' as provider,
        store_id as customer_id,
        name as customer_name,
        'store' as customer_type,
        default_address.regency as city,
        default_address.province as province,
        json_extract_string(emails, '$[0]') as email,
        coalesce(json_extract_string(phones, '$[0]'), nullif(default_address.phone, '')) as phone,
        json_extract_string(storetype, '$[0].type') as store_type,
        _extracted_at as extracted_at
    from addresses
)

select * from renamed
