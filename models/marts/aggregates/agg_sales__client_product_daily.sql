{#- One row per pa_date, client and product: what mart_client_sales sums into client totals
    and each client's top product (a few million rows against every order, and only the
    changed days are recomputed). Same incremental scheme as agg_sales__daily. -#}
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
        client_id,
        product_id,
        count(*) as orders,
        sum(units) as units,
        sum(liters) as liters,
        sum(total_amount) as spend
    from mart_orders
    group by pa_date, client_id, product_id

),

final as (

    select
        recomputed_days.pa_date,
        daily.client_id,
        daily.product_id,
        daily.orders,
        daily.units,
        daily.liters,
        daily.spend,
        recomputed_days.merged_at,
        {{ served_members_fingerprint() }} as served_members
    from recomputed_days
    {#- A recomputed day left without any served order keeps one placeholder row here
        (orders null), so replace_days deletes the day; a full build drops such days. #}
    {{ 'left' if days is not none else 'inner' }} join daily
        on recomputed_days.pa_date = daily.pa_date

)

select * from final
