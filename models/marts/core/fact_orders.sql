{#- One row per order: its latest landed version. Incremental: a run reads only the versions
    landed since the newest one already here (minus a lookback), keeps the latest of each
    order, and replaces the order's row wherever it was (locally delete+insert on order_id;
    on Athena an Iceberg MERGE on order_id, which moves a row whose pa_date changed). -#}
{#- Athena: no force_batch (with an empty batch dbt-athena 1.11 never creates the __dbt_tmp
    table it then reads, dbt-athena #519); dbt-athena batches by 100 partitions on its own
    when Athena reports too many open partitions. The MERGE reads only the days the batch's
    orders sit on (macros/iceberg.sql). -#}
{%- set athena_config = {
    'table_type': 'iceberg',
    'incremental_strategy': 'merge',
    'partitioned_by': ['pa_date'],
    'incremental_predicates': merge_days_predicates(),
    'write_compression': 'zstd',
} if target.type == 'athena' else {'incremental_strategy': 'delete+insert'} -%}
{{ config(
    materialized='incremental',
    unique_key='order_id',
    on_schema_change='fail',
    **athena_config
) }}

{#- dbt records a model's refs when it parses it, where is_incremental() is false: the
    incremental branch's inputs are named here so that they are recorded too (the manifests:
    incremental_cutoff() reads when landings were published). #}
{%- set order_versions = ref('stg_raw__orders') %}
{%- set landings = source('ingest', 'manifests') %}

with

{% if is_incremental() %}

new_order_versions as (

    select * from {{ order_versions }}
    where {{ landed_after(incremental_cutoff()) }}

),

latest_new_versions as (

    {{ latest_order_versions('new_order_versions') }}

),

current_versions as (

    select
        order_id,
        ingest_id,
        source_line,
        landed_at
    from {{ this }}

),

latest_versions as (

    select latest_new_versions.*
    from latest_new_versions
    left join current_versions
        on latest_new_versions.order_id = current_versions.order_id
    where
        current_versions.order_id is null
        or {{ is_newer_version('latest_new_versions', 'current_versions') }}

),

{% else %}

latest_versions as (

    select * from {{ ref('int_orders__latest') }}

),

{% endif %}

dim_status as (

    select * from {{ ref('dim_status') }}

),

dim_channels as (

    select * from {{ ref('dim_channels') }}

),

final as (

    select
        latest_versions.order_id,
        {{ surrogate_key(['latest_versions.client_id']) }} as client_key,
        {{ surrogate_key(['latest_versions.product_id']) }} as product_key,
        coalesce(dim_status.status_key, {{ unknown_key() }}) as status_key,
        coalesce(dim_channels.channel_key, {{ unknown_key() }}) as channel_key,
        latest_versions.units,
        latest_versions.unit_price,
        latest_versions.total_amount,
        latest_versions.total_liters,
        latest_versions.source_file,
        latest_versions.source_line,
        latest_versions.ingest_id,
        latest_versions.landed_at,
        latest_versions.pa_date,
        {{ batch_stamp(this if is_incremental() else none) }} as merged_at

    from latest_versions
    left join dim_status
        on latest_versions.status = dim_status.status
    left join dim_channels
        on latest_versions.channel = dim_channels.channel

)

select * from final
{{ cluster_by('pa_date') }}
