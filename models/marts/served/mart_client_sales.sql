with

mart_orders as (

    select * from {{ ref('mart_orders') }}

),

dim_clients as (

    select * from {{ ref('dim_clients') }}

),

client_products as (

    select
        client_id,
        product_id,
        product_description,
        count(*) as orders,
        sum(units) as units,
        sum(liters) as liters,
        sum(total_amount) as spend
    from mart_orders
    group by client_id, product_id, product_description

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
