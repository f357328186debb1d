with

agg_sales__daily as (

    select * from {{ ref('agg_sales__daily') }}

),

dim_channels as (

    select * from {{ ref('dim_channels') }}

),

dim_status as (

    select * from {{ ref('dim_status') }}

),

status_totals as (

    select
        agg_sales__daily.status_key,
        sum(agg_sales__daily.orders) as orders,
        sum(agg_sales__daily.units) as units,
        sum(agg_sales__daily.revenue) as revenue
    from agg_sales__daily
    inner join dim_channels
        on agg_sales__daily.channel_key = dim_channels.channel_key
    where not dim_channels.is_unknown
    group by agg_sales__daily.status_key

),

final as (

    select
        dim_status.status,
        cast(coalesce(status_totals.orders, 0) as bigint) as orders,
        cast(coalesce(status_totals.units, 0) as bigint) as units,
        cast(coalesce(status_totals.revenue, 0) as decimal(38, 2)) as revenue

    from dim_status
    left join status_totals
        on dim_status.status_key = status_totals.status_key
    where not dim_status.is_unknown

)

select * from final
