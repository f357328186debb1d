{#- One row per pa_date, product, channel and status: the single pass over mart_orders that
    the product, channel, product-channel, status and daily marts sum. Locally incremental:
    a run recomputes only the days int_orders__changed_days logged since this model's newest
    merged_at (custom strategy replace_days, macros/changed_days.sql); on Athena a table. -#}
{{ config(
    materialized='incremental' if target.type == 'duckdb' else 'table',
    incremental_strategy='replace_days',
    on_schema_change='fail',
) }}

{%- set days = changed_days_since() if is_incremental() else none %}

with

mart_orders as (

    select * from {{ ref('mart_orders') }}
    {%- if days is not none %}
    where pa_date in ({{ days }})
    {%- endif %}

),

recomputed_days as (

    {{ recomputed_days(days) }}

),

daily as (

    select
        pa_date,
        product_id,
        channel,
        status,
        count(*) as orders,
        sum(units) as units,
        sum(liters) as liters,
        sum(total_amount) as revenue
    from mart_orders
    group by pa_date, product_id, channel, status

),

final as (

    select
        recomputed_days.pa_date,
        daily.product_id,
        daily.channel,
        daily.status,
        daily.orders,
        daily.units,
        daily.liters,
        daily.revenue,
        recomputed_days.merged_at,
        {{ served_members_fingerprint() }} as served_members
    from recomputed_days
    {#- A recomputed day left without any served order keeps one placeholder row here
        (orders null), so replace_days deletes the day; a full build drops such days. #}
    {{ 'left' if days is not none else 'inner' }} join daily
        on recomputed_days.pa_date = daily.pa_date

)

select * from final
