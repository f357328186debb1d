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


{% macro iso_utc_timestamp(expression) -%}
    {#- ISO-8601 text ending in `Z` (the manifests' landed_at) as landed_at's type. -#}
    {{- return(adapter.dispatch('iso_utc_timestamp', 'duff')(expression)) -}}
{%- endmacro %}

{% macro default__iso_utc_timestamp(expression) -%}
    cast({{ expression }} as {{ landed_at_type() }})
{%- endmacro %}

{% macro athena__iso_utc_timestamp(expression) -%}
    cast(from_iso8601_timestamp_nanos({{ expression }}) at time zone 'UTC' as timestamp(6))
{%- endmacro %}


{% macro timestamp_literal(value) -%}
    {{- return(adapter.dispatch('timestamp_literal', 'duff')(value)) -}}
{%- endmacro %}

{% macro default__timestamp_literal(value) -%}
    cast('{{ value.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp)
{%- endmacro %}

{% macro athena__timestamp_literal(value) -%}
    {#- timestamp(6): it goes into Iceberg tables, which hold microseconds and refuse Trino's
        plain `timestamp` (milliseconds) in a CTAS. -#}
    cast('{{ value.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp(6))
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
    {#- The key of every dimension's unknown member (natural id -1 or text 'unknown'), the
        one spelling the dimensions and fact_orders share. -#}
    {{ surrogate_key(["'unknown'"]) }}
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
    {#- Every table is Iceberg on Athena (dbt_project.yml): microseconds, as locally. -#}
    timestamp(6)
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
