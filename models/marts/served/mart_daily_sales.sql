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

served_sales as (

    select agg_sales__daily.*
    from agg_sales__daily
    inner join dim_channels
        on agg_sales__daily.channel_key = dim_channels.channel_key
    inner join dim_status
        on agg_sales__daily.status_key = dim_status.status_key
    where
        not dim_channels.is_unknown
        and not dim_status.is_unknown

),

final as (

    select
        pa_date,
        cast(sum(orders) as bigint) as orders,
        cast(sum(units) as bigint) as units,
        cast(sum(liters) as decimal(38, 3)) as liters,
        cast(sum(revenue) as decimal(38, 2)) as revenue
    from served_sales
    group by pa_date

)

select * from final
