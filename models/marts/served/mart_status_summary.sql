with

agg_sales__daily as (

    select * from {{ ref('agg_sales__daily') }}

),

dim_status as (

    select * from {{ ref('dim_status') }}

),

status_totals as (

    select
        status,
        sum(orders) as orders,
        sum(units) as units,
        sum(revenue) as revenue
    from agg_sales__daily
    group by status

),

final as (

    select
        dim_status.status,
        cast(coalesce(status_totals.orders, 0) as bigint) as orders,
        cast(coalesce(status_totals.units, 0) as bigint) as units,
        cast(coalesce(status_totals.revenue, 0) as decimal(38, 2)) as revenue

    from dim_status
    left join status_totals
        on dim_status.status = status_totals.status
    where not dim_status.is_unknown

)

select * from final
