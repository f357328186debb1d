with

agg_sales__daily as (

    select * from {{ ref('agg_sales__daily') }}

),

dim_products as (

    select * from {{ ref('dim_products') }}

),

dim_channels as (

    select * from {{ ref('dim_channels') }}

),

dim_status as (

    select * from {{ ref('dim_status') }}

),

product_totals as (

    select
        agg_sales__daily.product_key,
        sum(agg_sales__daily.orders) as orders,
        sum(agg_sales__daily.units) as units,
        sum(agg_sales__daily.liters) as liters,
        sum(agg_sales__daily.revenue) as revenue
    from agg_sales__daily
    inner join dim_channels
        on agg_sales__daily.channel_key = dim_channels.channel_key
    inner join dim_status
        on agg_sales__daily.status_key = dim_status.status_key
    where
        not dim_channels.is_unknown
        and not dim_status.is_unknown
    group by agg_sales__daily.product_key

),

final as (

    select
        dim_products.product_id,
        dim_products.product_description,
        cast(product_totals.orders as bigint) as orders,
        cast(product_totals.units as bigint) as units,
        cast(product_totals.liters as decimal(38, 3)) as liters,
        cast(product_totals.revenue as decimal(38, 2)) as revenue

    from product_totals
    inner join dim_products
        on product_totals.product_key = dim_products.product_key
    where not dim_products.is_unknown

)

select * from final
