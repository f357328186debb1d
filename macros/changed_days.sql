{#- Incremental rollups by day (docs/warehouse.md, "Incremental rollups"). -#}

{% macro get_incremental_replace_days_sql(arg_dict) -%}
    {#- Custom incremental strategy `replace_days`: every pa_date present in the new rows is
        replaced whole. The model emits, for each day it recomputes, its rows, and for a day
        left without any order a single placeholder row whose orders is null, so that day
        is deleted and nothing is inserted for it. -#}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }}
    where pa_date in (select distinct pa_date from {{ source }});

    insert into {{ target }} ({{ columns }})
    select {{ columns }}
    from {{ source }}
    where orders > 0
{%- endmacro %}


{% macro changed_days_since(column='merged_at') -%}
    {#- The days an incremental rollup must recompute, as a SQL list of date literals: every
        pa_date of int_orders__changed_days logged after the newest `column` already in this
        model (its own watermark, so a rollup skipped by one build catches up in the next).
        A literal list rather than a subquery, so DuckDB prunes the fact's row groups by
        their pa_date statistics. `null` (matches nothing) when no day changed. -#}
    {%- if not execute -%}
        {{- return('null') -}}
    {%- endif -%}
    {%- set watermark = scalar_query('select max(' ~ column ~ ') as watermark from ' ~ this) -%}
    {%- set sql -%}
        select distinct pa_date
        from {{ ref('int_orders__changed_days') }}
        {%- if watermark is not none %}
        where merged_at > {{ timestamp_value_literal(watermark) }}
        {%- endif %}
        order by pa_date
    {%- endset -%}
    {%- set days = run_query(sql).columns[0].values() -%}
    {%- if days | length == 0 -%}
        {{- return('null') -}}
    {%- endif -%}
    {%- set literals = [] -%}
    {%- for day in days -%}
        {%- do literals.append("date '" ~ day ~ "'") -%}
    {%- endfor -%}
    {{- return(literals | join(', ')) -}}
{%- endmacro %}


{% macro timestamp_value_literal(value) -%}
    {#- A timestamp read back with run_query (a datetime, or text on some adapters) as the
        same literal type as run_started_literal(). -#}
    {%- if value is string -%}
        {%- set value = modules.datetime.datetime.fromisoformat(value[:26]) -%}
    {%- endif -%}
    {%- if value.tzinfo is not none -%}
        {%- set value = value.astimezone(modules.pytz.utc).replace(tzinfo=none) -%}
    {%- endif -%}
    cast('{{ value.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp)
{%- endmacro %}


{% macro scalar_query(sql) -%}
    {#- The first value of the first row of `sql`, or none (no rows, or not executing). -#}
    {%- if not execute -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set result = run_query(sql) -%}
    {%- if result.rows | length == 0 -%}
        {{- return(none) -}}
    {%- endif -%}
    {{- return(result.rows[0][0]) -}}
{%- endmacro %}
