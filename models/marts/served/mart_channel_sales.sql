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

channel_totals as (

    select
        agg_sales__daily.channel_key,
        sum(agg_sales__daily.orders) as orders,
        sum(agg_sales__daily.units) as units,
        sum(agg_sales__daily.liters) as liters,
        sum(agg_sales__daily.revenue) as revenue
    from agg_sales__daily
    inner join dim_status
        on agg_sales__daily.status_key = dim_status.status_key
    where not dim_status.is_unknown
    group by agg_sales__daily.channel_key

),

final as (

    select
        dim_channels.channel,
        cast(coalesce(channel_totals.orders, 0) as bigint) as orders,
        cast(coalesce(channel_totals.units, 0) as bigint) as units,
        cast(coalesce(channel_totals.liters, 0) as decimal(38, 3)) as liters,
        cast(coalesce(channel_totals.revenue, 0) as decimal(38, 2)) as revenue

    from dim_channels
    left join channel_totals
        on dim_channels.channel_key = channel_totals.channel_key
    where not dim_channels.is_unknown

)

select * from final
