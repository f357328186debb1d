with

mart_orders as (

    select * from {{ ref('mart_orders') }}

),

dim_channels as (

    select * from {{ ref('dim_channels') }}

),

channel_totals as (

    select
        channel,
        count(*) as orders,
        sum(units) as units,
        sum(liters) as liters,
        sum(total_amount) as revenue
    from mart_orders
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
