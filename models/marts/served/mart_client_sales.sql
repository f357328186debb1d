with

agg_sales__by_client as (

    select * from {{ ref('agg_sales__by_client') }}

),

dim_clients as (

    select * from {{ ref('dim_clients') }}

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

client_products as (

    select
        agg_sales__by_client.client_key,
        dim_products.product_id,
        dim_products.product_description,
        sum(agg_sales__by_client.orders) as orders,
        sum(agg_sales__by_client.units) as units,
        sum(agg_sales__by_client.liters) as liters,
        sum(agg_sales__by_client.spend) as spend
    from agg_sales__by_client
    inner join dim_products
        on agg_sales__by_client.product_key = dim_products.product_key
    inner join dim_channels
        on agg_sales__by_client.channel_key = dim_channels.channel_key
    inner join dim_status
        on agg_sales__by_client.status_key = dim_status.status_key
    where
        not dim_products.is_unknown
        and not dim_channels.is_unknown
        and not dim_status.is_unknown
    group by
        agg_sales__by_client.client_key,
        dim_products.product_id,
        dim_products.product_description

),

client_totals as (

    select
        client_key,
        sum(orders) as orders,
        sum(units) as units,
        sum(liters) as liters,
        sum(spend) as total_spend
    from client_products
    group by client_key

),

ranked_products as (

    select
        client_key,
        product_id,
        product_description,
        units,
        row_number() over (
            partition by client_key
            order by units desc, spend desc, product_id asc
        ) as product_rank
    from client_products

),

top_products as (

    select
        client_key,
        product_id,
        product_description,
        units
    from ranked_products
    where product_rank = 1

),

final as (

    select
        dim_clients.client_id,
        dim_clients.client_name,
        cast(client_totals.orders as bigint) as orders,
        cast(client_totals.units as bigint) as units,
        cast(client_totals.liters as decimal(38, 3)) as liters,
        cast(client_totals.total_spend as decimal(38, 2)) as total_spend,
        top_products.product_id as top_product_id,
        top_products.product_description as top_product_description,
        cast(top_products.units as bigint) as top_product_units

    from client_totals
    inner join dim_clients
        on client_totals.client_key = dim_clients.client_key
    inner join top_products
        on client_totals.client_key = top_products.client_key
    where not dim_clients.is_unknown

)

select * from final
