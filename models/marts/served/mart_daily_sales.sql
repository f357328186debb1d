with

agg_sales__daily as (

    select * from {{ ref('agg_sales__daily') }}

),

final as (

    select
        pa_date,
        cast(sum(orders) as bigint) as orders,
        cast(sum(units) as bigint) as units,
        cast(sum(liters) as decimal(38, 3)) as liters,
        cast(sum(revenue) as decimal(38, 2)) as revenue
    from agg_sales__daily
    group by pa_date

)

select * from final
