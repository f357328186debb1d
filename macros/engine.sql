{#- Cross-engine helpers. Models call these; each engine's spelling lives here only. -#}

{% macro utc_timestamp(expression) -%}
    {{- return(adapter.dispatch('utc_timestamp', 'duff')(expression)) -}}
{%- endmacro %}

{% macro default__utc_timestamp(expression) -%}
    cast({{ expression }} as timestamp)
{%- endmacro %}

{% macro duckdb__utc_timestamp(expression) -%}
    {#- Parquet timestamp[us, tz=UTC] reads as TIMESTAMPTZ in DuckDB. It is kept as is (the
        session time zone is pinned to UTC in profiles.yml, so it shows and casts as UTC):
        wrapping it in a function would stop DuckDB from pushing `landed_at >= <cutoff>`
        down to the Parquet row-group statistics, which is what keeps incremental runs from
        reading the whole history. -#}
    {{ expression }}
{%- endmacro %}

{% macro athena__utc_timestamp(expression) -%}
    {#- The Glue column is a plain timestamp already in UTC; Iceberg keeps microseconds. -#}
    cast({{ expression }} as timestamp(6))
{%- endmacro %}


{% macro timestamp_literal(value) -%}
    {{- return(adapter.dispatch('timestamp_literal', 'duff')(value)) -}}
{%- endmacro %}

{% macro default__timestamp_literal(value) -%}
    cast('{{ value.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp)
{%- endmacro %}

{% macro athena__timestamp_literal(value) -%}
    {#- Plain `timestamp` (milliseconds): it goes into Hive-format mart tables, which cannot
        hold timestamp(6). -#}
    cast('{{ value.strftime("%Y-%m-%d %H:%M:%S.%f")[:23] }}' as timestamp)
{%- endmacro %}


{% macro surrogate_key(field_list) -%}
    {#- A stable hash of the natural key: the same value on every engine and every run
        (md5 hex of the columns cast to text, '-' separated, nulls spelt out). -#}
    {%- set parts = [] -%}
    {%- for field in field_list -%}
        {%- do parts.append("coalesce(cast(" ~ field ~ " as " ~ dbt.type_string() ~ "), '_null_')") -%}
        {%- if not loop.last -%}{%- do parts.append("'-'") -%}{%- endif -%}
    {%- endfor -%}
    {{ dbt.hash(dbt.concat(parts)) }}
{%- endmacro %}


{% macro unknown_key() -%}
    {#- The key of every dimension's unknown member. -#}
    {{ surrogate_key(["'-1'"]) }}
{%- endmacro %}


{% macro landed_at_type() -%}
    {{- return(adapter.dispatch('landed_at_type', 'duff')()) -}}
{%- endmacro %}

{% macro default__landed_at_type() -%}
    timestamp
{%- endmacro %}

{% macro duckdb__landed_at_type() -%}
    timestamptz
{%- endmacro %}

{% macro athena__landed_at_type() -%}
    timestamp(6)
{%- endmacro %}


{% macro landed_at_literal(value) -%}
    {{- return(adapter.dispatch('landed_at_literal', 'duff')(value)) -}}
{%- endmacro %}

{% macro default__landed_at_literal(value) -%}
    {{ timestamp_literal(value) }}
{%- endmacro %}

{% macro athena__landed_at_literal(value) -%}
    cast('{{ value.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp(6))
{%- endmacro %}

{% macro duckdb__landed_at_literal(value) -%}
    cast('{{ value.strftime("%Y-%m-%d %H:%M:%S.%f") }}+00' as timestamptz)
{%- endmacro %}


{% macro timestamp_type() -%}
    {{- return(adapter.dispatch('timestamp_type', 'duff')()) -}}
{%- endmacro %}

{% macro default__timestamp_type() -%}
    timestamp
{%- endmacro %}

{% macro athena__timestamp_type() -%}
    {#- The served marts are Hive-format tables on Athena: milliseconds. -#}
    timestamp
{%- endmacro %}


{% macro batch_stamp(relation=none) -%}
    {#- The stamp of this run's batch (fact_orders.merged_at): the invocation's start (dbt's
        run_started_at, UTC), or one microsecond after the newest stamp already in
        `relation` when that is not earlier (a clock stepped back, or another machine's
        clock ahead), so batches always sort in the order they were merged: the change log,
        the rollups' watermarks and the batch-scoped tests rely on it. -#}
    {%- set stamp = utc_datetime(run_started_at) -%}
    {%- if relation is not none -%}
        {%- set newest = utc_datetime(scalar_query('select max(merged_at) from ' ~ relation)) -%}
        {%- if newest is not none and newest >= stamp -%}
            {%- set stamp = newest + modules.datetime.timedelta(microseconds=1) -%}
        {%- endif -%}
    {%- endif -%}
    {{- return(timestamp_value_literal(stamp)) -}}
{%- endmacro %}


{% macro cluster_by(column) -%}
    {#- Physical order of a table's rows where the engine keeps it: DuckDB keeps insertion
        order and skips whole row groups by min/max statistics, so a fact written in pa_date
        order lets a filter on a few days read only their row groups (the incremental
        rollups, the export, the batch-scoped tests). Athena's Iceberg fact is partitioned
        by pa_date instead: nothing to add there. -#}
    {{- return(adapter.dispatch('cluster_by', 'duff')(column)) -}}
{%- endmacro %}

{% macro default__cluster_by(column) -%}
{%- endmacro %}

{% macro duckdb__cluster_by(column) -%}
    order by {{ column }}
{%- endmacro %}
