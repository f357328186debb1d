{#- One row per pa_date, product, channel and status (surrogate keys) with at least one order:
    what the daily, product, channel, product-channel and status marts sum. Locally
    incremental by difference: a run subtracts the versions of the changed orders it counted
    before and adds their new versions (strategy merge_totals, macros/rollups.sql), so its
    cost follows the changed orders, not the days they touch; on Athena a table rebuilt from
    the fact. -#}
{{ config(
    materialized='incremental' if target.type == 'duckdb' else 'iceberg_table',
    incremental_strategy='merge_totals',
    unique_key=['pa_date', 'product_key', 'channel_key', 'status_key'],
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
        pa_date,
        product_key,
        channel_key,
        status_key,
        sum(sign) as orders,
        sum(sign * units) as units,
        sum(sign * total_liters) as liters,
        sum(sign * total_amount) as revenue
    from order_changes
    group by pa_date, product_key, channel_key, status_key

),

current_totals as (

    select this_rollup.*
    from {{ this }} as this_rollup
    inner join changes
        on
            this_rollup.pa_date = changes.pa_date
            and this_rollup.product_key = changes.product_key
            and this_rollup.channel_key = changes.channel_key
            and this_rollup.status_key = changes.status_key

),

totals as (

    select
        changes.pa_date,
        changes.product_key,
        changes.channel_key,
        changes.status_key,
        coalesce(current_totals.orders, 0) + changes.orders as orders,
        coalesce(current_totals.units, 0) + changes.units as units,
        coalesce(current_totals.liters, 0) + changes.liters as liters,
        coalesce(current_totals.revenue, 0) + changes.revenue as revenue,
        (select max(order_changes.merged_at) from order_changes) as merged_at
    from changes
    left join current_totals
        on
            changes.pa_date = current_totals.pa_date
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
        pa_date,
        product_key,
        channel_key,
        status_key,
        count(*) as orders,
        sum(units) as units,
        sum(total_liters) as liters,
        sum(total_amount) as revenue,
        max(merged_at) as merged_at
    from fact_orders
    group by pa_date, product_key, channel_key, status_key

),

{% endif %}

final as (

    select
        pa_date,
        product_key,
        channel_key,
        status_key,
        cast(orders as bigint) as orders,
        cast(units as bigint) as units,
        cast(liters as decimal(38, 3)) as liters,
        cast(revenue as decimal(38, 2)) as revenue,
        {#- timestamp_type(): the precision of the table it goes into on either engine #}
        cast(merged_at as {{ timestamp_type() }}) as merged_at
    from totals

)

select * from final
