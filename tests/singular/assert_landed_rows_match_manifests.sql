{{ config(tags=['conservation']) }}
{#- Conservation of every delivery in the lake (CONTRACT.md sections 1 and 2): the raw rows
    stored under raw/orders/ with its ingest_id are as many as its manifest's `valid`, and
    every raw row belongs to a delivery with a manifest. Catches a partition file lost or
    removed from the lake (its orders would otherwise drop out of every mart with every test
    passing) and raw files no landing wrote. Fails with one row per delivery that disagrees.
    Raw rows whose manifest is not written yet (the manifest is written last, so a file
    landing while dbt build runs) fail only once they are older than the lookback
    (var fact_orders_lookback_minutes) before this build started.
    On an incremental run it checks the deliveries landed in the window of fact_orders'
    latest batches (after every version the fact holds from earlier batches, as
    assert_raw_rows_conserved reads), so it reads the new raw files alone; a first build, a
    full refresh, var data_tests_scope = 'all' and Athena check every delivery. -#}
{%- set window_start = batch_window_start(latest_batch()) %}

with

manifests as (

    select
        ingest_id,
        source_file,
        status,
        valid
    from {{ ref('stg_ingest__manifests') }}
    {% if window_start is not none -%}
    where landed_at > {{ landed_at_literal(window_start) }}
    {%- endif %}

),

stored as (

    select
        ingest_id,
        min(source_file) as source_file,
        count(*) as stored_valid,
        max(landed_at) as landed_at
    from {{ ref('stg_raw__orders') }}
    {% if window_start is not none -%}
    where {{ landed_after(window_start) }}
    {%- endif %}
    group by ingest_id

),

compared as (

    select
        manifests.status,
        manifests.valid,
        coalesce(manifests.ingest_id, stored.ingest_id) as ingest_id,
        coalesce(manifests.source_file, stored.source_file) as source_file,
        coalesce(stored.stored_valid, 0) as stored_valid
    from manifests
    full outer join stored
        on manifests.ingest_id = stored.ingest_id
    where
        manifests.ingest_id is not null
        or stored.landed_at < {{ unpublished_landing_settled() }}

),

final as (

    select * from compared
    where valid is null or valid != stored_valid

)

select * from final
