{{ config(tags=['conservation']) }}
{#- Each fact_orders row holds exactly the landed version it names (order_id, ingest_id,
    source_line): that version's pa_date, measures, landing time and file, the keys of its
    client and product, and the status and channel its keys stand for. The conservation
    test (assert_raw_rows_conserved) checks which version each order holds; this one that
    the row is that version, value for value, so a wrong partition or amount fails a build.
    One row per fact row that differs, or that names no landed version.
    On an incremental run: the batch's rows (latest_batch), against the versions
    landed since the oldest of them (older lake files skipped by name). Every row with
    `--vars '{data_tests_scope: all}'`: a join of the whole fact with every landed version
    (13 s at 10 M orders), so a first build or a full refresh, which build the fact straight
    from the lake (int_orders__latest), leave it to that run. -#}

{%- set batch = latest_batch() %}
{%- set check_all = var('data_tests_scope', 'latest_batch') == 'all' %}
{%- set oldest = utc_datetime(scalar_query(
    'select min(landed_at) from ' ~ ref('fact_orders') ~ ' where ' ~ batch.merged_at
)) if batch is not none else none %}

with

fact_rows as (

    {#- the batch's rows, as batch_scope(..., 'rows') selects them, from the batch this
        test already looked up (batch_scope would run latest_batch's query again) #}
    select * from {{ ref('fact_orders') }}
    {%- if batch is not none %}
    where {{ batch.merged_at }}
    {%- elif not check_all %}
    where false
    {%- endif %}

),

versions as (

    select * from {{ ref('stg_raw__orders') }}
    {% if batch is not none -%}
    where
        {% if oldest is not none -%}
        {{ landed_after(oldest - modules.datetime.timedelta(microseconds=1)) }}
        {%- else -%}
        false
        {%- endif %}
    {%- elif not check_all -%}
    where false
    {%- endif %}

),

compared as (

    select
        fact_rows.order_id,
        fact_rows.ingest_id,
        fact_rows.source_line,
        versions.order_id is null as names_no_version,
        fact_rows.pa_date != versions.pa_date as wrong_pa_date,
        fact_rows.units != versions.units
        or fact_rows.unit_price != versions.unit_price
        or fact_rows.total_amount != versions.total_amount
        or fact_rows.total_liters != versions.total_liters as wrong_measures,
        fact_rows.landed_at != versions.landed_at
        or fact_rows.source_file != versions.source_file as wrong_lineage,
        fact_rows.client_key != {{ surrogate_key(['versions.client_id']) }}
        or fact_rows.product_key != {{ surrogate_key(['versions.product_id']) }} as wrong_keys,
        {#- a status or channel the seeds do not describe is the unknown member -#}
        fact_rows.status_key
        != coalesce(dim_status.status_key, {{ unknown_key() }}) as wrong_status,
        fact_rows.channel_key
        != coalesce(dim_channels.channel_key, {{ unknown_key() }}) as wrong_channel
    from fact_rows
    left join versions
        on
            fact_rows.order_id = versions.order_id
            and fact_rows.ingest_id = versions.ingest_id
            and fact_rows.source_line = versions.source_line
    left join {{ ref('dim_status') }} as dim_status
        on versions.status = dim_status.status
    left join {{ ref('dim_channels') }} as dim_channels
        on versions.channel = dim_channels.channel

),

final as (

    select * from compared
    where
        names_no_version
        or wrong_pa_date
        or wrong_measures
        or wrong_lineage
        or wrong_keys
        or wrong_status
        or wrong_channel

)

select * from final
