with

agg_sales__daily as (

    select * from {{ ref('agg_sales__daily') }}

),

dim_products as (

    select * from {{ ref('dim_products') }}

),

product_channel_totals as (

    select
        product_id,
        channel,
        sum(orders) as orders,
        sum(units) as units,
        sum(liters) as liters,
        sum(revenue) as revenue
    from agg_sales__daily
    group by product_id, channel

),

final as (

    select
        product_channel_totals.product_id,
        dim_products.product_description,
        product_channel_totals.channel,
        cast(product_channel_totals.orders as bigint) as orders,
        cast(product_channel_totals.units as bigint) as units,
        cast(product_channel_totals.liters as decimal(38, 3)) as liters,
        cast(product_channel_totals.revenue as decimal(38, 2)) as revenue

    from product_channel_totals
    inner join dim_products
        on product_channel_totals.product_id = dim_products.product_id

)

select * from final
