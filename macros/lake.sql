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


{% macro raw_orders_relation(source_relation) -%}
    {{- return(adapter.dispatch('raw_orders_relation', 'duff')(source_relation)) -}}
{%- endmacro %}


{% macro default__raw_orders_relation(source_relation) -%}
    {{- return(source_relation) -}}
{%- endmacro %}


{% macro duckdb__raw_orders_relation(source_relation) -%}
    {#- An empty lake (a fresh clone before the first landing) builds empty models rather
        than failing: read_parquet() refuses a glob that matches nothing, so the source is
        swapped for an empty relation of exactly the landed schema. -#}
    {%- set raw_glob = duff_lake_root() ~ '/raw/orders/*/*.parquet' -%}
    {%- if execute -%}
        {%- set found = run_query("select count(*) as n from glob('" ~ raw_glob ~ "')") -%}
        {%- if found.columns[0].values()[0] == 0 -%}
            {{- log("duff: no raw orders under " ~ raw_glob ~ "; building empty models", info=true) -}}
            {{- return(empty_raw_orders()) -}}
        {%- endif -%}
    {%- endif -%}
    {{- return(source_relation) -}}
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
            cast(null as date) as pa_date
        where false
    )
{%- endmacro %}
