{#- One row per client id plus the unknown member; the name is the one on the client's latest
    order version (macros/latest_versions.sql: latest_attributes). Incremental on client_id:
    a run reads only recently landed versions and replaces a client's row when one of them
    is newer than the version its name came from. -#}
{%- set athena_config = {
    'table_type': 'iceberg',
    'incremental_strategy': 'merge',
} if target.type == 'athena' else {'incremental_strategy': 'delete+insert'} -%}
{{ config(
    materialized='incremental',
    unique_key='client_id',
    on_schema_change='fail',
    **athena_config
) }}

with

fact_orders as (

    select * from {{ ref('fact_orders') }}

),

order_versions as (

    {#- The versions up to the newest one the fact holds, read after the fact was built: every
        client of the fact is here even when a file lands mid-build, and a client first seen in
        a file landed since waits for the build that merges its orders. #}
    select * from {{ ref('stg_raw__orders') }}
    where
        {{ landed_after(incremental_cutoff('version_landed_at')) }}
        and landed_at <= (select max(fact_orders.landed_at) from fact_orders)

),

latest_names as (

    {{ latest_attributes('order_versions', 'client_id', ['client_name']) }}

),

clients as (

    select
        {{ surrogate_key(['client_id']) }} as client_key,
        client_id,
        client_name,
        version_ingest_id,
        version_source_line,
        false as is_unknown,
        version_landed_at
    from latest_names

),

unknown_member as (

    select
        {{ unknown_key() }} as client_key,
        cast(-1 as bigint) as client_id,
        'unknown' as client_name,
        cast(null as {{ dbt.type_string() }}) as version_ingest_id,
        cast(null as bigint) as version_source_line,
        true as is_unknown,
        cast(null as {{ landed_at_type() }}) as version_landed_at

),

final as (

    select * from clients
    union all
    select * from unknown_member

)

select * from final
