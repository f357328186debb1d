with

client_product_days as (

    select * from {{ ref('agg_sales__client_product_daily') }}

),

dim_clients as (

    select * from {{ ref('dim_clients') }}

),

dim_products as (

    select * from {{ ref('dim_products') }}

),

client_products as (

    select
        client_product_days.client_id,
        client_product_days.product_id,
        dim_products.product_description,
        sum(client_product_days.orders) as orders,
        sum(client_product_days.units) as units,
        sum(client_product_days.liters) as liters,
        sum(client_product_days.spend) as spend
    from client_product_days
    inner join dim_products
        on client_product_days.product_id = dim_products.product_id
    group by
        client_product_days.client_id,
        client_product_days.product_id,
        dim_products.product_description

),

client_totals as (

    select
        client_id,
        sum(orders) as orders,
        sum(units) as units,
        sum(liters) as liters,
        sum(spend) as total_spend
    from client_products
    group by client_id

),

ranked_products as (

    select
        client_id,
        product_id,
        product_description,
        units,
        row_number() over (
            partition by client_id
            order by units desc, spend desc, product_id asc
        ) as product_rank
    from client_products

),

top_products as (

    select
        client_id,
        product_id,
        product_description,
        units
    from ranked_products
    where product_rank = 1

),

final as (

    select
        client_totals.client_id,
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
        on client_totals.client_id = dim_clients.client_id
    inner join top_products
        on client_totals.client_id = top_products.client_id

)

select * from final
