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
    {%- set made = run_query("select duff_makedirs('" ~ build_dir ~ "') as path") -%}
    {%- set absolute_dir = made.columns[0].values()[0] -%}

    {%- for name in served_mart_names() -%}
        {%- set relation = relations[name] -%}
        {%- set file_name = '_SUCCESS' if name == 'mart_build_info' else name -%}
        {%- set order_by = ' order by order_id' if name == 'mart_orders' else '' -%}
        {%- call statement('export_' ~ name) -%}
            copy (select * from {{ relation }}{{ order_by }})
            to '{{ build_dir }}/{{ file_name }}.parquet' (format parquet)
        {%- endcall -%}
    {%- endfor -%}
    {{- log('duff: exported the served marts to ' ~ absolute_dir, info=true) -}}
    {{- return('') -}}
{%- endmacro %}
