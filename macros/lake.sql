{#- Where the local lake lives, and how the raw orders are read from it. -#}

{% macro duff_lake_root() -%}
    {#- The lake's root as SQL string literals hold it. A single quote would end those
        literals (read_parquet, glob, COPY ... TO), so such a path is refused here, with the
        reason, before any SQL runs. -#}
    {%- set root = (env_var('DUFF_LAKE', 'lake') | trim).rstrip('/') -%}
    {%- if "'" in root -%}
        {{- exceptions.raise_compiler_error(
            "DUFF_LAKE=" ~ root ~ " holds a single quote ('), which the local warehouse's "
            ~ "SQL cannot take in a path: use a lake directory without one"
        ) -}}
    {%- endif -%}
    {{- return(root) -}}
{%- endmacro %}


{% macro lake_relation(source_relation) -%}
    {{- return(adapter.dispatch('lake_relation', 'duff')(source_relation)) -}}
{%- endmacro %}


{% macro default__lake_relation(source_relation) -%}
    {{- return(source_relation) -}}
{%- endmacro %}


{% macro duckdb__lake_relation(source_relation) -%}
    {#- An empty lake (a fresh clone before the first landing) builds empty models rather
        than failing: read_parquet() and read_json() refuse a glob that matches nothing, so
        the source is swapped for an empty relation of exactly its schema. -#}
    {%- if not execute -%}
        {{- return(source_relation) -}}
    {%- endif -%}
    {%- set lake_files = {
        'raw_orders': ('raw orders', '/raw/orders/*/*.parquet', empty_raw_orders),
        'ingest_manifests': ('manifests', '/manifests/*.json', empty_ingest_manifests),
        'ingest_rejects': ('rejected rows', '/rejects/orders/*/*.parquet', empty_ingest_rejects),
    } -%}
    {%- set what, files, empty = lake_files[source_relation.identifier] -%}
    {%- set lake_glob = duff_lake_root() ~ files -%}
    {#- One match is enough: DuckDB's glob stops at the first (counting every raw file of
        two years, ~1,500 of them, took ~15 ms of every build). -#}
    {%- set found = run_query("select count(*) as n from (select 1 from glob('" ~ lake_glob ~ "') limit 1)") -%}
    {%- if found.columns[0].values()[0] == 0 -%}
        {{- log("duff: no " ~ what ~ " under " ~ lake_glob ~ "; building empty models from them", info=true) -}}
        {{- return(empty()) -}}
    {%- endif -%}
    {{- return(source_relation) -}}
{%- endmacro %}


{% macro empty_ingest_manifests() -%}
    (
        select
            cast(null as varchar) as ingest_id,
            cast(null as varchar) as source_file,
            cast(null as varchar) as status,
            cast(null as bigint) as rows_in,
            cast(null as bigint) as valid,
            cast(null as struct(missing bigint, invalid bigint, duplicate bigint)) as rejected,
            cast(null as json) as ignored_columns,
            cast(null as varchar) as landed_at,
            cast(null as varchar) as error
        where false
    )
{%- endmacro %}


{% macro empty_ingest_rejects() -%}
    (
        select
            cast(null as varchar) as source_file,
            cast(null as bigint) as source_line,
            cast(null as varchar) as ingest_id,
            cast(null as varchar) as raw_values,
            cast(null as varchar) as reason,
            cast(null as varchar) as "column",
            cast(null as varchar) as detail,
            cast(null as timestamptz) as landed_at,
            cast(null as date) as ingest_date
        where false
    )
{%- endmacro %}


{% macro empty_raw_orders() -%}
    (
        select
            cast(null as bigint) as order_id,
            cast(null as bigint) as client_id,
            cast(null as varchar) as client_name,
            cast(null as bigint) as product_id,
            cast(null as varchar) as product_description,
            cast(null as decimal(12, 2)) as product_price,
            cast(null as integer) as product_ccf,
            cast(null as decimal(10, 3)) as product_volume,
            cast(null as varchar) as point_of_sale_channel,
            cast(null as varchar) as status,
            cast(null as date) as order_date,
            cast(null as decimal(22, 2)) as total_amount,
            cast(null as decimal(20, 3)) as total_liters,
            cast(null as varchar) as source_file,
            cast(null as bigint) as source_line,
            cast(null as varchar) as ingest_id,
            cast(null as timestamptz) as landed_at,
            cast(null as date) as pa_date,
            cast(null as varchar) as filename
        where false
    )
{%- endmacro %}


{% macro raw_file_path() -%}
    {#- The path of the lake file a raw order version was read from, for
        raw_files_landed_after. Dispatched: DuckDB's `filename` column of read_parquet (the
        source's external_location asks for it); null elsewhere (Athena prunes by partition
        and reads the Glue table, not file names). -#}
    {{- return(adapter.dispatch('raw_file_path', 'duff')()) -}}
{%- endmacro %}

{% macro default__raw_file_path() -%}
    cast(null as {{ dbt.type_string() }})
{%- endmacro %}

{% macro duckdb__raw_file_path() -%}
    filename
{%- endmacro %}


{% macro raw_files_landed_after(value, file_column='landed_file') -%}
    {#- A condition keeping the rows of stg_raw__orders read from lake files that may hold
        versions landed after `value` (a naive UTC datetime). Every file landing writes
        under raw/orders/ is named `<ingest_id>-<n>.parquet`, and an ingest_id starts with the
        landed_at of all its rows, as YYYYMMDDTHHMMSSffffffZ (ingestion/layout.py:
        make_ingest_id; tests/integration/ingestion/test_raw_file_names.py holds both
        writers to it), so a name whose first 22 characters sort at or below `value` in that
        form holds no version landed after it (the landing stamped exactly `value`, the
        newest one a build has read, is skipped too: with no lookback, ~200 files a day).
        Dispatched: on DuckDB the condition is on the file name alone, which DuckDB
        evaluates on the file list, skipping those files unopened (a read of the rows
        landed after a cutoff otherwise opens every raw file's footer, ~0.16 ms a file, and
        the lake gains ~200 files a day when older orders are re-sent); a name not of that
        shape (8 characters, T, 12, Z and a dash: a LIKE pattern, which costs half what a
        regular expression does over thousands of names), or no name, is kept. `true`
        elsewhere. -#}
    {{- return(adapter.dispatch('raw_files_landed_after', 'duff')(value, file_column)) -}}
{%- endmacro %}

{% macro default__raw_files_landed_after(value, file_column) -%}
    true
{%- endmacro %}

{% macro duckdb__raw_files_landed_after(value, file_column) -%}
    ({{ file_column }} is null
        or parse_filename({{ file_column }}) not like '________T____________Z-%'
        or left(parse_filename({{ file_column }}), 22) > '{{ value.strftime("%Y%m%dT%H%M%S%fZ") }}')
{%- endmacro %}


{% macro earliest_landing_published_after(value) -%}
    {#- The landed_at (naive UTC datetime) of the earliest-stamped landing whose manifest was
        written after `value` (a naive UTC datetime, compared with the lake's own file times
        less one second: S3 listings and DuckDB's read_blob give them to the second), or none.
        A landing writes its manifest last (CONTRACT.md section 2), so this finds the
        landings published since a build read the lake, however long before that they were
        stamped: a stream batch stamped with its records' arrival and landed after hours of
        retries, a large file landed from a laptop. The stamp is read from the manifest's
        name (`<ingest_id>.json`, an ingest_id starting with the landed_at of all its rows:
        raw_files_landed_after); a name not of that shape is no landing's. -#}
    {%- if not execute -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set since = value - modules.datetime.timedelta(seconds=1) -%}
    {%- set first = scalar_query(manifests_published_after(since)) -%}
    {%- if first is none -%}
        {{- return(none) -}}
    {%- endif -%}
    {{- return(modules.datetime.datetime.strptime(first[:22], '%Y%m%dT%H%M%S%fZ')) -}}
{%- endmacro %}

{% macro manifests_published_after(since) -%}
    {{- return(adapter.dispatch('manifests_published_after', 'duff')(since)) -}}
{%- endmacro %}

{% macro default__manifests_published_after(since) -%}
    {#- Athena (Trino's Hive connector): "$file_modified_time" is each row's file's
        last-modified time, a hidden column of every Hive table. -#}
    select min(ingest_id) as first_ingest_id
    from {{ source('ingest', 'manifests') }}
    where
        "$file_modified_time" > from_iso8601_timestamp('{{ since.strftime("%Y-%m-%dT%H:%M:%S.%fZ") }}')
        and ingest_id like '________T____________Z-%'
{%- endmacro %}

{% macro duckdb__manifests_published_after(since) -%}
    {#- read_blob lists the files with their modification times without reading them (only
        the columns selected are read); no match is no row. -#}
    select min(left(parse_filename(filename), 22)) as first_stamp
    from read_blob('{{ duff_lake_root() }}/manifests/*.json')
    where
        last_modified > cast('{{ since.strftime("%Y-%m-%d %H:%M:%S.%f") }}+00' as timestamptz)
        and parse_filename(filename) like '________T____________Z-%.json'
{%- endmacro %}


{% macro unpublished_landing_settled() -%}
    {#- The landed_at literal before which rows of a landing with no manifest are settled: the
        manifest is written last, so rows of a file landing while dbt build runs have none
        yet, and fail the conservation tests only once older than the lookback
        (var fact_orders_lookback_minutes) before this build started. -#}
    {%- set lookback = modules.datetime.timedelta(minutes=var('fact_orders_lookback_minutes') | int) -%}
    {{- return(landed_at_literal(utc_datetime(run_started_at - lookback))) -}}
{%- endmacro %}
