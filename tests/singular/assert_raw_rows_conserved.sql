{{ config(tags=['conservation']) }}
{#- Conservation: every landed row is either an order's current row in fact_orders or a
    superseded version of it (a newer version of the same order_id landed later: greater
    landed_at, then ingest_id, then source_line). Superseded rows are found independently of
    the models' ranking, with a self-join. Fails with one row holding the counts when
    raw rows != fact rows + superseded rows, when a fact row is not its order's newest
    version, or (on an incremental run) when a fact row is no version read in scope. Only
    orders with two or more landed versions can have a superseded one, so the self-join runs
    over those alone (one cheap group-by finds them): the same result, without joining
    every raw row to itself (10 M orders: ~6 s of every build).
    On an incremental run the check covers the orders of fact_orders' latest batches and
    every order with a version landed in their window (after every version the fact holds
    from earlier batches), so an order the batch lost fails it: their versions in the
    window, and every fact row holding their ids, wherever it sits (a stale copy left behind
    fails it too). A version landed before the window is older than every version in it
    (landed_at decides first), so for an order with a version in the window the older ones
    would add as many raw rows as superseded rows: they are not read, and the fact row must
    instead be one of the versions read. A batch row that itself landed before the window (a
    file published after a build but stamped before the newest rows it merged, which
    fact_orders' lookback picks up; or a merge that kept an older version) widens the read
    for its order alone: every version of it landed since the oldest such row, by the same
    argument (anything older is older than the fact's row). Usually there is none, and the
    test reads what the batch changed, not the days its orders sit on (10 M orders: ~730 of
    ~1,450 raw files read before, 1.4-2.5 s a build). A first build, a full refresh or var
    data_tests_scope = 'all' check every order (macros/batch_scope.sql); so does Athena,
    where batches are not followed by incremental rollups (the change log is a view there)
    and raw_orders, partitioned by pa_date, cannot be read by landing time anyway.
    Rows that landed after the fact's newest batch stamp (merged_at: the start of the build
    that merged it) are left for the next build: a file landing while `dbt build` runs is
    not yet the fact's business, and its re-sent versions must not make the build that
    started before it fail. A fact row that landed after the stamp (a file published before
    fact_orders read the lake) counts when its order has a version before the stamp. -#}

{%- set batch = latest_batch() %}
{#- The batch's window in the lake: versions landed after every version the fact holds from
    earlier batches. Their orders are in scope too, so an order the batch lost (landed, and
    no row in the fact) is counted; the fact's batch rows alone would not name it. Scoped
    where the batches have such a window (locally, where the change log is a table). #}
{%- set window_start = batch_window_start(batch) %}
{%- set scoped = window_start is not none %}
{%- set newest_stamp = scalar_query('select max(merged_at) from ' ~ ref('fact_orders')) if scoped else none %}
{%- set in_window = landed_after(window_start) ~ (
    ' and landed_at <= ' ~ landed_at_literal(utc_datetime(newest_stamp)) if newest_stamp is not none else ''
) if scoped else none %}
{#- The batch's rows that landed before the window, and the oldest landed_at among them
    (none: usually) #}
{%- set late_rows = (
    'select order_id, landed_at from ' ~ ref('fact_orders') ~ ' where (' ~ batch.merged_at
    ~ ') and landed_at <= ' ~ landed_at_literal(window_start)
) if scoped else none %}
{%- set late_start = utc_datetime(
    scalar_query('select min(late_rows.landed_at) from (' ~ late_rows ~ ') as late_rows')
) if late_rows is not none else none %}

with

cutoff as (

    select max(merged_at) as merged_at from {{ ref('fact_orders') }}

),

{% if scoped -%}
window_versions as (

    {#- Read once, used twice: every version in the window is in scope, and names its order.
        Each read of the window opens the footer of every raw file (their landed_at
        statistics skip the rest), which costs more than the rows it returns. #}
    select
        order_id,
        ingest_id,
        source_line,
        landed_at
    from {{ ref('stg_raw__orders') }}
    where {{ in_window }}

),

batch_orders as (

    {{ batch.order_ids }}

    union

    select window_versions.order_id from window_versions

),

raw_versions as (

    {% if late_start is not none -%}
    {#- every version of the late rows' orders landed since the oldest of them #}
    select
        order_id,
        ingest_id,
        source_line,
        landed_at
    from {{ ref('stg_raw__orders') }}
    where
        {{ landed_after(late_start - modules.datetime.timedelta(microseconds=1)) }}
        and landed_at <= (select cutoff.merged_at from cutoff)
        and order_id in (select late_rows.order_id from ({{ late_rows }}) as late_rows)

    union

    {% endif -%}
    {#- (a null order_id is in no order's scope) #}
    select * from window_versions
    where window_versions.order_id is not null

),

fact_in_scope as (

    select * from {{ ref('fact_orders') }}
    where order_id in (select batch_orders.order_id from batch_orders)

),
{%- else %}
raw_versions as (

    select * from {{ ref('stg_raw__orders') }}
    where landed_at <= (select cutoff.merged_at from cutoff)

),

fact_in_scope as (

    select * from {{ ref('fact_orders') }}

),
{%- endif %}

fact_orders as (

    select * from fact_in_scope
    where landed_at <= (select cutoff.merged_at from cutoff)

    union all

    select * from fact_in_scope
    where
        landed_at > (select cutoff.merged_at from cutoff)
        and order_id in (select raw_versions.order_id from raw_versions)

),

resent_orders as (

    select order_id
    from raw_versions
    group by order_id
    having count(*) > 1

),

resent_versions as (

    select
        raw_versions.order_id,
        raw_versions.ingest_id,
        raw_versions.source_line,
        raw_versions.landed_at
    from raw_versions
    inner join resent_orders
        on raw_versions.order_id = resent_orders.order_id

),

superseded as (

    select distinct
        older.order_id,
        older.ingest_id,
        older.source_line
    from resent_versions as older
    inner join resent_versions as newer
        on
            older.order_id = newer.order_id
            and {{ is_newer_version('newer', 'older') }}

),

fact_not_newest as (

    select fact_orders.order_id
    from fact_orders
    inner join superseded
        on
            fact_orders.order_id = superseded.order_id
            and fact_orders.ingest_id = superseded.ingest_id
            and fact_orders.source_line = superseded.source_line

),

{% if scoped -%}
fact_not_read as (

    {#- Older versions are not read here, so a fact row holding one is no version in scope #}
    select fact_orders.order_id
    from fact_orders
    left join raw_versions
        on
            fact_orders.order_id = raw_versions.order_id
            and fact_orders.ingest_id = raw_versions.ingest_id
            and fact_orders.source_line = raw_versions.source_line
    where
        fact_orders.landed_at <= (select cutoff.merged_at from cutoff)
        and raw_versions.order_id is null

),

{% endif -%}
counts as (

    select
        (select count(*) from raw_versions) as raw_rows,
        (select count(*) from fact_orders) as fact_rows,
        (select count(*) from superseded) as superseded_rows,
        (select count(*) from fact_not_newest) as fact_rows_not_newest,
        {% if scoped -%}
        (select count(*) from fact_not_read) as fact_rows_not_read
        {%- else -%}
        0 as fact_rows_not_read
        {%- endif %}

),

final as (

    select * from counts
    where
        raw_rows != fact_rows + superseded_rows
        or fact_rows_not_newest > 0
        or fact_rows_not_read > 0

)

select * from final
