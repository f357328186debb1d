{#- One row per landed or quarantined delivery, newest first when served (GET /quality/files,
    CONTRACT.md section 4). -#}
with

manifests as (

    select * from {{ ref('stg_ingest__manifests') }}

),

final as (

    select
        ingest_id,
        source_file,
        status,
        rows_in,
        valid,  -- noqa: RF04
        rejected_missing,
        rejected_invalid,
        rejected_duplicate,
        ignored_columns,
        cast(landed_at as {{ timestamp_type() }}) as landed_at,
        error
    from manifests

)

select * from final
