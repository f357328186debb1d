{#- The days each fact_orders batch touched: one row per (pa_date, merged_at) for every day on
    which any landed version of an order merged in that batch sits, so the day an order was
    re-sent away from is logged as well as its new day. Locally an append-only log that the
    day-grained rollups read to recompute only those days (docs/warehouse.md, "Incremental
    rollups"); on Athena, where the rollups are rebuilt whole, a view nobody needs to scan. -#}
{{ config(
    materialized='incremental' if target.type == 'duckdb' else 'view',
    incremental_strategy='append',
    on_schema_change='fail',
) }}

{%- set watermark = scalar_query('select max(merged_at) from ' ~ this) if is_incremental() else none %}

with

order_versions as (

    select * from {{ ref('stg_raw__orders') }}

),

fact_orders as (

    select * from {{ ref('fact_orders') }}

),

{% if is_incremental() %}

merged_orders as (

    select
        order_id,
        merged_at
    from fact_orders
    {%- if watermark is not none %}
    where merged_at > {{ timestamp_value_literal(watermark) }}
    {%- endif %}

),

touched_days as (

    select
        order_versions.pa_date,
        merged_orders.merged_at
    from order_versions
    inner join merged_orders
        on order_versions.order_id = merged_orders.order_id

),

{% else %}

{#- First build or full refresh: every landed version belongs to an order of the fact, so
    every landed day is logged, as touched by the fact's newest batch. -#}
newest_batch as (

    select max(merged_at) as merged_at
    from fact_orders

),

touched_days as (

    select
        order_versions.pa_date,
        newest_batch.merged_at
    from order_versions
    cross join newest_batch

),

{% endif %}

final as (

    select distinct
        pa_date,
        merged_at
    from touched_days

)

select * from final
