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
    {#- A channel or status removed from (or renamed in) the seeds changes which orders
        mart_orders serves on every day: then every day is recomputed. -#}
    {%- set stale_members = scalar_query(
        'select count(*) from ' ~ this ~ ' where served_members != ' ~ served_members_fingerprint()
    ) -%}
    {%- set sql -%}
        select distinct pa_date
        from {{ ref('int_orders__changed_days') }}
        {%- if watermark is not none and not stale_members %}
        where merged_at > {{ timestamp_value_literal(watermark) }}
        {%- endif %}
        order by pa_date
    {%- endset -%}
    {{- return(date_literals(sql) or 'null') -}}
{%- endmacro %}


{% macro date_literals(sql) -%}
    {#- The dates of the first column of `sql` as a comma-separated list of date literals
        (empty text when there are none). -#}
    {%- set literals = [] -%}
    {%- for day in run_query(sql).columns[0].values() -%}
        {%- do literals.append("date '" ~ day ~ "'") -%}
    {%- endfor -%}
    {{- return(literals | join(', ')) -}}
{%- endmacro %}


{% macro recomputed_days(days) -%}
    {#- The days a rollup writes, each with the newest batch that logged it (the rollup's
        merged_at, its next watermark): the days listed in `days` (date literals) on an
        incremental run, every logged day when `days` is none. -#}
    select
        pa_date,
        {#- timestamp_type(): the rollups are Hive tables on Athena, which refuse the
            Iceberg fact's timestamp(6) ("Incorrect timestamp precision", issue 12). #}
        cast(max(merged_at) as {{ timestamp_type() }}) as merged_at
    from {{ ref('int_orders__changed_days') }}
    {%- if days is not none %}
    where pa_date in ({{ days }})
    {%- endif %}
    group by pa_date
{%- endmacro %}


{% macro served_members_fingerprint() -%}
    {#- A scalar subquery: md5 of the served (known) channels and statuses, stored on every
        rollup row (served_members) so an incremental run can tell that the seeds changed. -#}
    (
        select {{ dbt.hash(dbt.listagg('member', "','", 'order by member')) }}
        from (
            select {{ dbt.concat(["'channel:'", 'channel']) }} as member
            from {{ ref('dim_channels') }}
            where not is_unknown
            union all
            select {{ dbt.concat(["'status:'", 'status']) }} as member
            from {{ ref('dim_status') }}
            where not is_unknown
        ) as members
    )
{%- endmacro %}


{% macro timestamp_value_literal(value) -%}
    {#- A timestamp read back with run_query (a datetime, or text on some adapters) as the
        same literal type as batch_stamp() (Athena: timestamp(6), the Iceberg fact's
        type; a plain timestamp there has milliseconds and would never equal merged_at). -#}
    {%- set value = utc_datetime(value) -%}
    {{- return(adapter.dispatch('timestamp_value_literal', 'duff')(value)) -}}
{%- endmacro %}

{% macro default__timestamp_value_literal(value) -%}
    {{ default__timestamp_literal(value) }}
{%- endmacro %}

{% macro athena__timestamp_value_literal(value) -%}
    cast('{{ value.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp(6))
{%- endmacro %}


{% macro utc_datetime(value) -%}
    {#- A timestamp as run_query returns it (a datetime, aware or naive, or ISO text on some
        adapters) as a naive UTC datetime; none stays none. -#}
    {%- if value is none -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- if value is string -%}
        {%- set value = modules.datetime.datetime.fromisoformat(value[:26]) -%}
    {%- endif -%}
    {%- if value.tzinfo is not none -%}
        {%- set value = value.astimezone(modules.pytz.utc).replace(tzinfo=none) -%}
    {%- endif -%}
    {{- return(value) -}}
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
