with

source as (

    select * from {{ lake_relation(source('raw', 'orders')) }}

),

renamed as (

    select
        cast(order_id as bigint) as order_id,
        cast(client_id as bigint) as client_id,
        cast(product_id as bigint) as product_id,
        client_name,
        product_description,
        point_of_sale_channel as channel,
        lower(status) as status,
        source_file,
        ingest_id,
        cast(product_ccf as integer) as units,
        cast(product_price as decimal(12, 2)) as unit_price,
        cast(product_volume as decimal(10, 3)) as unit_liters,
        cast(total_amount as decimal(22, 2)) as total_amount,
        cast(total_liters as decimal(20, 3)) as total_liters,
        cast(source_line as bigint) as source_line,
        order_date,
        cast(pa_date as date) as pa_date,
        {{ utc_timestamp('landed_at') }} as landed_at,
        {{ raw_file_path() }} as landed_file

    from source

)

select * from renamed
