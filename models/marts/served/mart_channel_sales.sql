with

agg_sales__daily as (

    select * from {{ ref('agg_sales__daily') }}

),

dim_channels as (

    select * from {{ ref('dim_channels') }}

),

channel_totals as (

    select
        channel,
        sum(orders) as orders,
        sum(units) as units,
        sum(liters) as liters,
        sum(revenue) as revenue
    from agg_sales__daily
    group by channel

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
        on dim_channels.channel = channel_totals.channel
    where not dim_channels.is_unknown

)

select * from final
