{#- One row per client id plus the unknown member. Incremental on client_id: a run reads only
    recently landed versions and replaces a client's row when one of them is newer than the
    version its name came from. -#}
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
{#- Built after fact_orders (no column comes from it): the clients it reads are then always
    a superset of the fact's, even when an ingest lands mid-run or `--select fact_orders+`
    is run, so mart_orders never drops an order for a client not yet in this table. #}
-- depends_on: {{ ref('fact_orders') }}

with

order_versions as (

    select * from {{ ref('stg_raw__orders') }}
    {% if is_incremental() %}
    where landed_at > {{ incremental_cutoff('name_landed_at') }}
    {% endif %}

),

latest_names as (

    {{ latest_attribute_rows('order_versions', 'client_id', ['client_name']) }}

),

{% if is_incremental() %}

current_clients as (

    select
        client_id,
        name_ingest_id as ingest_id,
        name_source_line as source_line,
        name_landed_at as landed_at
    from {{ this }}

),

changed_names as (

    select latest_names.*
    from latest_names
    left join current_clients
        on latest_names.client_id = current_clients.client_id
    where
        current_clients.client_id is null
        or {{ is_newer_version('latest_names', 'current_clients') }}

),

{% else %}

changed_names as (

    select * from latest_names

),

{% endif %}

clients as (

    select
        {{ surrogate_key(['client_id']) }} as client_key,
        client_id,
        client_name,
        ingest_id as name_ingest_id,
        source_line as name_source_line,
        false as is_unknown,
        landed_at as name_landed_at
    from changed_names

),

unknown_member as (

    select
        {{ surrogate_key(["'-1'"]) }} as client_key,
        cast(-1 as bigint) as client_id,
        'unknown' as client_name,
        cast(null as {{ dbt.type_string() }}) as name_ingest_id,
        cast(null as bigint) as name_source_line,
        true as is_unknown,
        cast(null as {{ landed_at_type() }}) as name_landed_at

),

final as (

    select * from clients
    union all
    select * from unknown_member

)

select * from final
