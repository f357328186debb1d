{#- One row per rejected row (GET /quality/rejects, CONTRACT.md section 4). -#}
with

rejects as (

    select * from {{ ref('stg_ingest__rejects') }}

),

final as (

    select
        ingest_id,
        source_file,
        source_line,
        reason,
        column_name,
        detail,
        raw_values
    from rejects

)

select * from final
