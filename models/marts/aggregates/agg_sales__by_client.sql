{#- One row per client, product, channel and status (surrogate keys) with at least one
    order: what mart_client_sales sums into client totals and each client's top product.
    Same incremental scheme as agg_sales__daily. The channel and status stay in the grain so
    that the served mart leaves out unknown members exactly as mart_orders does. -#}
{{ config(
    materialized='incremental' if target.type == 'duckdb' else 'iceberg_table',
    incremental_strategy='merge_totals',
    unique_key=['client_key', 'product_key', 'channel_key', 'status_key'],
    on_schema_change='fail',
) }}

{#- dbt records a model's refs when it parses it, where is_incremental() is false: the
    incremental branch's input is named here so that its ref is recorded too. #}
{%- set change_log = ref('fact_orders__change_log') %}

with

{% if is_incremental() %}

order_changes as (

    {{ signed_order_changes(change_log, this) }}

),

changes as (

    select
        client_key,
        product_key,
        channel_key,
        status_key,
        sum(sign) as orders,
        sum(sign * units) as units,
        sum(sign * total_liters) as liters,
        sum(sign * total_amount) as spend
    from order_changes
    group by client_key, product_key, channel_key, status_key

),

current_totals as (

    select this_rollup.*
    from {{ this }} as this_rollup
    inner join changes
        on
            this_rollup.client_key = changes.client_key
            and this_rollup.product_key = changes.product_key
            and this_rollup.channel_key = changes.channel_key
            and this_rollup.status_key = changes.status_key

),

totals as (

    select
        changes.client_key,
        changes.product_key,
        changes.channel_key,
        changes.status_key,
        coalesce(current_totals.orders, 0) + changes.orders as orders,
        coalesce(current_totals.units, 0) + changes.units as units,
        coalesce(current_totals.liters, 0) + changes.liters as liters,
        coalesce(current_totals.spend, 0) + changes.spend as spend,
        (select max(order_changes.merged_at) from order_changes) as merged_at
    from changes
    left join current_totals
        on
            changes.client_key = current_totals.client_key
            and changes.product_key = current_totals.product_key
            and changes.channel_key = current_totals.channel_key
            and changes.status_key = current_totals.status_key

),

{% else %}

fact_orders as (

    select * from {{ ref('fact_orders') }}

),

totals as (

    select
        client_key,
        product_key,
        channel_key,
        status_key,
        count(*) as orders,
        sum(units) as units,
        sum(total_liters) as liters,
        sum(total_amount) as spend,
        max(merged_at) as merged_at
    from fact_orders
    group by client_key, product_key, channel_key, status_key

),

{% endif %}

final as (

    select
        client_key,
        product_key,
        channel_key,
        status_key,
        cast(orders as bigint) as orders,
        cast(units as bigint) as units,
        cast(liters as decimal(38, 3)) as liters,
        cast(spend as decimal(38, 2)) as spend,
        {#- timestamp_type(): the precision of the table it goes into on either engine #}
        cast(merged_at as {{ timestamp_type() }}) as merged_at
    from totals

)

select * from final
