with

fact_orders as (

    select * from {{ ref('fact_orders') }}

),

data_as_of as (

    select max(landed_at) as data_as_of
    from fact_orders

),

final as (

    select
        cast('{{ invocation_id }}' as {{ dbt.type_string() }}) as build_id,
        {{ timestamp_literal(run_started_at) }} as built_at,
        cast(data_as_of.data_as_of as {{ timestamp_type() }}) as data_as_of
    from data_as_of

)

select * from final
