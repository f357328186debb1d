{#- Locally a view: writing the join of every order into a DuckDB table on every build costs
    more than evaluating it in its readers (its batch-scoped tests and the export, which
    read a few orders or days of it). On Athena a table of its build like every served mart
    (macros/served_builds.sql: served_table), partitioned by pa_date so the API's day filters
    (/orders?from=&to=) read only those days. A new Iceberg table per build, never replaced in
    place. -#}
{{ config(
    materialized='view' if target.type == 'duckdb' else 'served_table',
    partitioned_by=none if target.type == 'duckdb' else ['pa_date'],
) }}

with

fact_orders as (

    select * from {{ ref('fact_orders') }}

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

final as (

    select
        fact_orders.order_id,
        dim_clients.client_id,
        dim_products.product_id,
        dim_products.product_description,
        cast(fact_orders.units as bigint) as units,
        fact_orders.unit_price,
        fact_orders.total_amount,
        fact_orders.total_liters as liters,
        dim_channels.channel,
        dim_status.status,
        fact_orders.pa_date

    from fact_orders
    inner join dim_clients
        on fact_orders.client_key = dim_clients.client_key
    inner join dim_products
        on fact_orders.product_key = dim_products.product_key
    inner join dim_channels
        on fact_orders.channel_key = dim_channels.channel_key
    inner join dim_status
        on fact_orders.status_key = dim_status.status_key
    where
        not dim_clients.is_unknown
        and not dim_products.is_unknown
        and not dim_channels.is_unknown
        and not dim_status.is_unknown

)

select * from final
