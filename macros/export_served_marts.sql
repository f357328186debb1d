{#- The local export (docs/architecture.md section 2, "Local export"). -#}

{% macro served_mart_names() -%}
    {#- The relations the API reads, in the order they are exported; mart_build_info goes
        last as _SUCCESS.parquet. -#}
    {{- return([
        'mart_client_sales',
        'mart_product_sales',
        'mart_channel_sales',
        'mart_product_channel_sales',
        'mart_status_summary',
        'mart_daily_sales',
        'mart_orders',
        'mart_build_info',
    ]) -}}
{%- endmacro %}


{% macro export_served_marts(results) -%}
    {{- return(adapter.dispatch('export_served_marts', 'duff')(results)) -}}
{%- endmacro %}


{% macro default__export_served_marts(results) -%}
    {#- Athena: the API reads the mart tables in Athena itself; nothing to export. -#}
    {{- return('') -}}
{%- endmacro %}


{% macro duckdb__export_served_marts(results) -%}
    {%- if not execute or flags.WHICH not in ('run', 'build') -%}
        {{- return('') -}}
    {%- endif -%}

    {#- Export only a complete, clean build: nothing errored, failed or was skipped, and this
        invocation rebuilt every served mart (a `--select` of part of the DAG exports
        nothing, so a build directory never mixes two builds). -#}
    {%- set problems = [] -%}
    {%- set built = [] -%}
    {%- set relations = {} -%}
    {%- for result in results -%}
        {%- if result.status in ('error', 'fail', 'skipped', 'runtime error') -%}
            {%- do problems.append(result.node.unique_id ~ ': ' ~ result.status) -%}
        {%- elif result.node.resource_type == 'model' and result.status == 'success' -%}
            {%- do built.append(result.node.name) -%}
            {%- do relations.update({result.node.name: result.node.relation_name}) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set missing = served_mart_names() | reject('in', built) | list -%}
    {%- if problems -%}
        {{- log('duff: not exporting the marts; this build had problems: ' ~ problems | join(', '), info=true) -}}
        {{- return('') -}}
    {%- endif -%}
    {%- if missing -%}
        {{- log('duff: not exporting the marts; not rebuilt by this invocation: ' ~ missing | join(', '), info=true) -}}
        {{- return('') -}}
    {%- endif -%}

    {%- set stamp = modules.datetime.datetime.utcnow().strftime('%Y%m%dT%H%M%S%fZ') -%}
    {%- set build_dir = duff_lake_root() ~ '/marts/builds/' ~ stamp ~ '_' ~ invocation_id -%}
    {%- set orders_dir = build_dir ~ '/mart_orders' -%}

    {#- mart_orders, one file per pa_date: unchanged days are hard links of the previous
        complete build's files, the other days are written. -#}
    {%- do duff_export_hook(build_dir, 'stage_previous') -%}
    {%- set keep = duff_unchanged_days(build_dir, relations) -%}
    {%- do duff_export_hook(build_dir, 'keep_days', keep) -%}
    {%- set linked = duff_days_in(orders_dir) -%}
    {%- set written = duff_write_order_days(build_dir, relations['mart_orders'], linked) -%}

    {%- for name in served_mart_names() if name not in ('mart_orders', 'mart_build_info') -%}
        {%- call statement('export_' ~ name) -%}
            copy (select * from {{ relations[name] }})
            to '{{ build_dir }}/{{ name }}.parquet' (format parquet)
        {%- endcall -%}
    {%- endfor -%}
    {%- call statement('export_mart_build_info') -%}
        copy (select * from {{ relations['mart_build_info'] }})
        to '{{ build_dir }}/_SUCCESS.parquet' (format parquet)
    {%- endcall -%}
    {{- log('duff: exported the served marts to ' ~ build_dir ~ ' (mart_orders: ' ~ written
        ~ (' day' if written == 1 else ' days') ~ ' written, ' ~ linked | length
        ~ ' linked from the previous build)', info=true) -}}
    {{- return('') -}}
{%- endmacro %}


{% macro duff_export_hook(build_dir, action, days=[]) -%}
    {#- The plugin's Python (dbt_plugins/duff_duckdb.py: Plugin.store), called through
        dbt-duckdb's store_relation; it returns nothing, so callers glob what it did. -#}
    {%- do adapter.store_relation('duff', none, [], build_dir, 'duff', {'action': action, 'days': days}) -%}
{%- endmacro %}


{% macro duff_days_in(orders_dir) -%}
    {#- The days ('YYYY-MM-DD') that have a Parquet file under orders_dir. -#}
    {%- set found = run_query(
        "select distinct regexp_extract(file, 'pa_date=([0-9]{4}-[0-9]{2}-[0-9]{2})/[^/]*$', 1) as day"
        ~ " from glob('" ~ orders_dir ~ "/*/*.parquet') order by day"
    ) -%}
    {{- return(found.columns[0].values() | reject('equalto', '') | list) -}}
{%- endmacro %}


{% macro duff_model_relation(name) -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'model' and node.name == name and node.package_name == project_name -%}
            {{- return(node.relation_name) -}}
        {%- endif -%}
    {%- endfor -%}
    {{- exceptions.raise_compiler_error('duff export: no model ' ~ name) -}}
{%- endmacro %}


{% macro duff_unchanged_days(build_dir, relations) -%}
    {#- The days of the staged previous build P (build_dir/_previous) whose files are still
        right: every day, unless P's served names or columns differ from this build's, minus
        the days of the orders merged since P was built (merged_at > P.built_at), at every
        raw version of those orders (a re-sent order leaves its old day), minus the days
        whose totals differ from P's mart_daily_sales, and only days that still have orders.
        Nothing staged (no P, old layout, unreadable): no days. -#}
    {%- set staged = build_dir ~ '/_previous' -%}
    {%- set staged_days = duff_days_in(staged ~ '/mart_orders') -%}
    {%- if not staged_days -%}
        {{- return([]) -}}
    {%- endif -%}
    {%- set one_file = run_query("select file from glob('" ~ staged ~ "/mart_orders/*/*.parquet') limit 1").columns[0].values()[0] -%}

    {%- set differences = run_query(duff_served_differences_sql(staged, one_file, relations)) -%}
    {%- set reasons = [] -%}
    {%- for column in differences.columns -%}
        {%- if column.values()[0] > 0 -%}
            {%- do reasons.append(column.name ~ ' ' ~ column.values()[0]) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if reasons -%}
        {{- log('duff: rewriting every day of mart_orders; changed since the previous build: ' ~ reasons | join(', '), info=true) -}}
        {{- return([]) -}}
    {%- endif -%}

    {%- set kept = run_query(duff_unchanged_days_sql(staged, relations)) -%}
    {{- return(kept.columns[0].values() | list) -}}
{%- endmacro %}


{% macro duff_served_differences_sql(staged, one_file, relations) -%}
    {#- One row: how many served columns, product descriptions, channels and statuses differ
        from the previous build's (any > 0 rewrites every day). -#}
    with

    columns_now as (
        select column_name, column_type from (describe select * from {{ relations['mart_orders'] }})
    ),

    columns_then as (
        select column_name, column_type from (describe select * from read_parquet('{{ one_file }}'))
    ),

    products_then as (
        select * from read_parquet('{{ staged }}/mart_product_sales.parquet')
    ),

    channels_then as (
        select channel from read_parquet('{{ staged }}/mart_channel_sales.parquet')
    ),

    channels_now as (
        select channel from {{ relations['mart_channel_sales'] }}
    ),

    statuses_then as (
        select status from read_parquet('{{ staged }}/mart_status_summary.parquet')
    ),

    statuses_now as (
        select status from {{ relations['mart_status_summary'] }}
    )

    select
        (
            {{ duff_rows_differing('columns_now', 'columns_then') }}
        ) as mart_orders_columns,
        (
            select count(*)
            from {{ relations['mart_product_sales'] }} as products_now
            inner join products_then
                on products_now.product_id = products_then.product_id
            where products_now.product_description is distinct from products_then.product_description
        ) as product_descriptions,
        (
            {{ duff_rows_differing('channels_now', 'channels_then') }}
        ) as channels,
        (
            {{ duff_rows_differing('statuses_now', 'statuses_then') }}
        ) as statuses
{%- endmacro %}


{% macro duff_rows_differing(a, b) -%}
    {#- A query counting the rows of `a` not in `b` plus those of `b` not in `a`. -#}
    select count(*) from (
        (select * from {{ a }} except select * from {{ b }})
        union all
        (select * from {{ b }} except select * from {{ a }})
    )
{%- endmacro %}


{% macro duff_unchanged_days_sql(staged, relations) -%}
    with

    previous as (
        select built_at from read_parquet('{{ staged }}/_SUCCESS.parquet')
    ),

    {#- fact_orders__change_log holds every row the fact wrote: the days of the orders
        merged since P, at every version the fact held (a re-sent order leaves its old
        day). -#}
    merged_order_days as (
        select distinct pa_date
        from {{ duff_model_relation('fact_orders__change_log') }}
        where order_id in (
            select order_id
            from {{ duff_model_relation('fact_orders__change_log') }}
            where merged_at > (select built_at from previous)
        )
    ),

    daily_now as (
        select pa_date, orders, units, liters, revenue
        from {{ relations['mart_daily_sales'] }}
    ),

    daily_then as (
        select pa_date, orders, units, liters, revenue
        from read_parquet('{{ staged }}/mart_daily_sales.parquet')
    ),

    changed_days as (
        select pa_date from merged_order_days
        union
        select pa_date from (select * from daily_now except select * from daily_then)
        union
        select pa_date from (select * from daily_then except select * from daily_now)
    ),

    staged_days as (
        select distinct
            cast(regexp_extract(file, 'pa_date=([0-9]{4}-[0-9]{2}-[0-9]{2})/[^/]*$', 1) as date)
                as pa_date
        from glob('{{ staged }}/mart_orders/*/*.parquet')
    )

    select strftime(pa_date, '%Y-%m-%d') as day
    from staged_days
    where
        pa_date in (select pa_date from daily_now)
        and pa_date not in (select pa_date from changed_days where pa_date is not null)
    order by day
{%- endmacro %}


{% macro duff_write_order_days(build_dir, mart_orders, linked) -%}
    {#- Writes every day of mart_orders not in `linked` as
        mart_orders/pa_date=<day>/<invocation_id>.parquet sorted by order_id, and returns how
        many days it wrote. The days with orders are mart_daily_sales' (one row per day of
        mart_orders). One COPY per day (DuckDB's PARTITION_BY neither keeps the order inside
        a partition nor always writes one file per partition), run by the plugin over the
        profile's threads, each on its own cursor: a day's COPY uses one core. Each reads the
        view filtered to its day, which skips all but that day's row groups of fact_orders
        (kept in pa_date order, macros/engine.sql: cluster_by); a temporary table of the rows
        to write cost more than it saved. -#}
    {%- set days = run_query(
        "select strftime(pa_date, '%Y-%m-%d') as day from "
        ~ duff_model_relation('mart_daily_sales') ~ " order by day"
    ).columns[0].values() | reject('in', linked) | list -%}
    {%- do adapter.store_relation('duff', none, [], build_dir, 'duff', {
        'action': 'write_days', 'days': days, 'relation': mart_orders,
        'file_name': invocation_id ~ '.parquet'}) -%}
    {{- return(days | length) -}}
{%- endmacro %}
