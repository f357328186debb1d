{#- Built last, after every served mart and their tests: in `dbt build` a failing test skips
    it, so built_at is the start of the last build that got through, which is where the
    batch-scoped data tests start (macros/batch_scope.sql: latest_batch). On Athena it is the
    pointer the API reads: an Iceberg table whose one row each build replaces in one commit
    (served_pointer), naming the build whose per-build tables `<mart>__b<build>` the API
    queries (macros/served_builds.sql), so it needs every served mart of this build, the
    quality marts included. #}
{{ config(materialized='served_pointer' if target.type == 'athena' else 'table') }}
{%- do assert_every_served_table_selected() %}
-- depends_on: {{ ref('mart_orders') }}
-- depends_on: {{ ref('mart_client_sales') }}
-- depends_on: {{ ref('mart_product_sales') }}
-- depends_on: {{ ref('mart_channel_sales') }}
-- depends_on: {{ ref('mart_product_channel_sales') }}
-- depends_on: {{ ref('mart_status_summary') }}
-- depends_on: {{ ref('mart_daily_sales') }}
-- depends_on: {{ ref('mart_quality_rejects') }}
-- depends_on: {{ ref('mart_quality_rejects_daily') }}

with

fact_orders as (

    select * from {{ ref('fact_orders') }}

),

quality_files as (

    select * from {{ ref('mart_quality_files') }}

),

landings as (

    {#- Every row the fact holds carries its landing's landed_at. A file that landed with no
        valid row (all rejected, or a header only) adds none, yet the data is as of it too
        (CONTRACT.md section 4: the latest landed file): it had nothing to merge. #}
    select cast(landed_at as {{ timestamp_type() }}) as landed_at
    from fact_orders

    union all

    select cast(landed_at as {{ timestamp_type() }}) as landed_at
    from quality_files
    where
        status = 'landed'
        and valid = 0
        and cast(landed_at as {{ timestamp_type() }}) <= {{ timestamp_literal(run_started_at) }}

),

data_as_of as (

    select max(landed_at) as data_as_of
    from landings

),

final as (

    select
        cast('{{ invocation_id }}' as {{ dbt.type_string() }}) as build_id,
        {{ timestamp_literal(run_started_at) }} as built_at,
        cast(data_as_of.data_as_of as {{ timestamp_type() }}) as data_as_of
    from data_as_of

)

select * from final
