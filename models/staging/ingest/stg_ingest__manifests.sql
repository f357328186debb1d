with

source as (

    select * from {{ lake_relation(source('ingest', 'manifests')) }}

),

renamed as (

    select
        source.ingest_id,
        source.source_file,
        source.status,
        source.error,
        cast(source.ignored_columns as {{ dbt.type_string() }}) as ignored_columns,
        cast(source.rows_in as bigint) as rows_in,
        cast(source.valid as bigint) as valid,  -- noqa: RF04
        cast(source.rejected.missing as bigint) as rejected_missing,
        cast(source.rejected.invalid as bigint) as rejected_invalid,
        cast(source.rejected.duplicate as bigint) as rejected_duplicate,
        {{ iso_utc_timestamp('source.landed_at') }} as landed_at

    from source

)

select * from renamed
