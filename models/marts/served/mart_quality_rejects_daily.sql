{#- Rejected rows by landing day, reason and column: what the dashboard's data-quality panel
    charts. -#}
with

rejects as (

    select * from {{ ref('stg_ingest__rejects') }}

),

final as (

    select
        cast(landed_at as date) as landing_date,
        reason,
        column_name,
        cast(count(*) as bigint) as rejected_rows,
        cast(count(distinct ingest_id) as bigint) as files
    from rejects
    group by cast(landed_at as date), reason, column_name

)

select * from final
