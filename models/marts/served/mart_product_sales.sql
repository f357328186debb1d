with

mart_orders as (

    select * from {{ ref('mart_orders') }}

),

final as (

    select
        product_id,
        product_description,
        cast(count(*) as bigint) as orders,
        cast(sum(units) as bigint) as units,
        cast(sum(liters) as decimal(38, 3)) as liters,
        cast(sum(total_amount) as decimal(38, 2)) as revenue
    from mart_orders
    group by product_id, product_description

)

select * from final
