with

source as (

    select * from {{ lake_relation(source('ingest', 'rejects')) }}

),

renamed as (

    select
        ingest_id,
        source_file,
        reason,
        {{ adapter.quote('column') }} as column_name,
        detail,
        raw_values,
        cast(source_line as bigint) as source_line,
        {{ utc_timestamp('landed_at') }} as landed_at

    from source

)

select * from renamed
