with

mart_orders as (

    select * from {{ ref('mart_orders') }}

),

final as (

    select
        pa_date,
        product_id,
        product_description,
        channel,
        status,
        count(*) as orders,
        sum(units) as units,
        sum(liters) as liters,
        sum(total_amount) as revenue
    from mart_orders
    group by pa_date, product_id, product_description, channel, status

)

select * from final
