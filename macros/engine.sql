{#- Cross-engine helpers. Models call these; each engine's spelling lives here only. -#}

{% macro utc_timestamp(expression) -%}
    {{- return(adapter.dispatch('utc_timestamp', 'duff')(expression)) -}}
{%- endmacro %}

{% macro default__utc_timestamp(expression) -%}
    cast({{ expression }} as timestamp)
{%- endmacro %}

{% macro duckdb__utc_timestamp(expression) -%}
    {#- Parquet timestamp[us, tz=UTC] reads as TIMESTAMPTZ in DuckDB: take its UTC wall clock
        as a plain TIMESTAMP so the warehouse is the same whatever the session time zone. -#}
    timezone('UTC', {{ expression }})
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
    {#- The key of every dimension's unknown member. -#}
    {{ surrogate_key(["'-1'"]) }}
{%- endmacro %}


{% macro timestamp_type() -%}
    {{- return(adapter.dispatch('timestamp_type', 'duff')()) -}}
{%- endmacro %}

{% macro default__timestamp_type() -%}
    timestamp
{%- endmacro %}

{% macro athena__timestamp_type() -%}
    timestamp(6)
{%- endmacro %}
