{% macro order_version_columns() -%}
    {#- The columns of stg_raw__orders, in order; what int_orders__latest and the fact's
        incremental branch keep of each version. -#}
    {{- return([
        'order_id', 'client_id', 'product_id', 'client_name', 'product_description',
        'channel', 'status', 'source_file', 'ingest_id', 'units', 'unit_price',
        'unit_liters', 'total_amount', 'total_liters', 'source_line', 'order_date',
        'pa_date', 'landed_at',
    ]) -}}
{%- endmacro %}


{% macro latest_order_versions(relation) -%}
    {#- The latest version of each order in `relation` (a relation or CTE name with the
        columns of stg_raw__orders): the greatest landed_at, ties broken by the greater
        ingest_id, then the greater source_line, so the choice never depends on row order. -#}
    select
        {%- for column in order_version_columns() %}
        {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from (
        select
            *,
            row_number() over (
                partition by order_id
                order by landed_at desc, ingest_id desc, source_line desc
            ) as version_rank
        from {{ relation }}
    ) as ranked_versions
    where version_rank = 1
{%- endmacro %}


{% macro is_newer_version(new, old) -%}
    {#- True when the version aliased `new` wins over `old` by the same rule. -#}
    (
        {{ new }}.landed_at > {{ old }}.landed_at
        or ({{ new }}.landed_at = {{ old }}.landed_at and {{ new }}.ingest_id > {{ old }}.ingest_id)
        or (
            {{ new }}.landed_at = {{ old }}.landed_at
            and {{ new }}.ingest_id = {{ old }}.ingest_id
            and {{ new }}.source_line > {{ old }}.source_line
        )
    )
{%- endmacro %}


{% macro incremental_cutoff(landed_at_column='landed_at') -%}
    {#- An incremental run reads the versions landed strictly after this literal: the newest
        landed_at already in this model minus var('fact_orders_lookback_minutes') (so with
        the default lookback the newest landings are read again, which also catches an
        ingest stamped with the very same landed_at); the epoch while the model is empty (or
        when not executing). A literal, not a subquery, so the
        engine can prune: DuckDB skips Parquet row groups by their landed_at statistics. -#}
    {%- set epoch = modules.datetime.datetime(1970, 1, 1) -%}
    {%- set cutoff = namespace(value=epoch) -%}
    {%- if execute and is_incremental() -%}
        {%- set newest = utc_datetime(scalar_query('select max(' ~ landed_at_column ~ ') as newest from ' ~ this)) -%}
        {%- if newest is not none -%}
            {%- set cutoff.value = newest - modules.datetime.timedelta(minutes=var('fact_orders_lookback_minutes') | int) -%}
        {%- endif -%}
    {%- endif -%}
    {{ landed_at_literal(cutoff.value) }}
{%- endmacro %}
