{#- Every row fact_orders has held, with the batch (merged_at) that wrote it: locally an
    append-only log (each run appends the fact's rows newer than the newest logged batch),
    from which the rollups take, for each order a batch changed, the version they counted
    before (to subtract) and the new one (to add). On Athena, where the rollups are rebuilt
    whole, a view nobody needs to scan. -#}
{{ config(
    materialized='incremental' if target.type == 'duckdb' else 'view',
    incremental_strategy='append',
    on_schema_change='fail',
) }}

{%- set watermark = scalar_query('select max(merged_at) from ' ~ this) if is_incremental() else none %}

with

fact_orders as (

    select * from {{ ref('fact_orders') }}
    {%- if watermark is not none %}
    where merged_at > {{ timestamp_value_literal(watermark) }}
    {%- endif %}

),

final as (

    select
        order_id,
        client_key,
        product_key,
        status_key,
        channel_key,
        units,
        total_amount,
        total_liters,
        pa_date,
        merged_at
    from fact_orders

)

select * from final
