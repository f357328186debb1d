with

mart_orders as (

    select * from {{ ref('mart_orders') }}

),

dim_status as (

    select * from {{ ref('dim_status') }}

),

status_totals as (

    select
        status,
        count(*) as orders,
        sum(units) as units,
        sum(total_amount) as revenue
    from mart_orders
    group by status

),

final as (

    select
        dim_status.status,
        cast(coalesce(status_totals.orders, 0) as bigint) as orders,
        cast(coalesce(status_totals.units, 0) as bigint) as units,
        cast(coalesce(status_totals.revenue, 0) as decimal(38, 2)) as revenue

    from dim_status
    left join status_totals
        on dim_status.status = status_totals.status
    where not dim_status.is_unknown

)

select * from final
