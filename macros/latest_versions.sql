{#- "Latest version" everywhere (CONTRACT.md section 3): the greatest landed_at, then the
    greater ingest_id, then the greater source_line. A total order, so the choice never
    depends on the order rows are read in. -#}

{% macro latest_version_first() -%}
    {#- The window order that ranks an entity's versions newest first. -#}
    landed_at desc, ingest_id desc, source_line desc
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
        columns of stg_raw__orders). -#}
    select
        {%- for column in order_version_columns() %}
        {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from (
        select
            *,
            row_number() over (
                partition by order_id
                order by {{ latest_version_first() }}
            ) as version_rank
        from {{ relation }}
    ) as ranked_versions
    where version_rank = 1
{%- endmacro %}


{% macro latest_attributes(relation, key_column, attribute_columns) -%}
    {#- The "latest attribute" dimensions (dim_clients, dim_products): for each `key_column`
        value in `relation` (columns of stg_raw__orders), the attributes of its latest
        version, with that version's lineage as version_landed_at, version_ingest_id and
        version_source_line. In an incremental run, only the keys that are new or whose
        latest version beats the one stored in the model (`this`, which has the same
        lineage columns). -#}
    select
        ranked_versions.{{ key_column }},
        {%- for column in attribute_columns %}
        ranked_versions.{{ column }},
        {%- endfor %}
        ranked_versions.landed_at as version_landed_at,
        ranked_versions.ingest_id as version_ingest_id,
        ranked_versions.source_line as version_source_line
    from (
        select
            *,
            row_number() over (
                partition by {{ key_column }}
                order by {{ latest_version_first() }}
            ) as version_rank
        from {{ relation }}
    ) as ranked_versions
    {%- if is_incremental() %}
    left join (
        select
            {{ key_column }},
            version_landed_at as landed_at,
            version_ingest_id as ingest_id,
            version_source_line as source_line
        from {{ this }}
    ) as stored_versions
        on ranked_versions.{{ key_column }} = stored_versions.{{ key_column }}
    {%- endif %}
    where
        ranked_versions.version_rank = 1
        {%- if is_incremental() %}
        and (
            stored_versions.{{ key_column }} is null
            or {{ is_newer_version('ranked_versions', 'stored_versions') }}
        )
        {%- endif %}
{%- endmacro %}


{% macro landed_after(value) -%}
    {#- The rows of stg_raw__orders landed strictly after `value` (a naive UTC datetime: an
        incremental run's incremental_cutoff(), the conservation test's window start), as a
        literal (not a subquery) so the engine can prune: DuckDB skips Parquet row groups by
        their landed_at statistics, and skips the lake files landed before `value` by their
        names without opening them (raw_files_landed_after). -#}
    landed_at > {{ landed_at_literal(value) }} and {{ raw_files_landed_after(value) }}
{%- endmacro %}


{% macro incremental_cutoff(landed_at_column='landed_at') -%}
    {#- A naive UTC datetime: the newest landed_at already in this model (at most the previous
        build's batch stamp: a landing stamped in the future) minus var('fact_orders_lookback_minutes') (so
        with the default lookback the newest landings are read again, which also catches an
        ingest stamped with the very same landed_at), moved back to just before the
        earliest-stamped landing published since then (earliest_landing_published_after: a
        landing stamped long before it was published, which the lookback alone would skip
        for good); the epoch while the model is empty (or on a full build, or when not
        executing).
        Every landing this model has not read was published after the build that read its
        newest row (N) had listed the manifests, less the time between that listing and its
        read (seconds), and N was stamped before that read (a landing is stamped before it
        publishes), so "published after N - lookback" finds them all while the lookback is
        longer than those seconds; it is also the margin for the clocks of the landing and of
        the lake's storage. (A dimension reads versions up to the fact's newest, at least its
        own N, so a landing published before its read but stamped after that is read next
        time by its stamp.) var('find_late_landings', true) = false leaves the lookback alone.
        The manifests source is named here so that every model calling this depends on it
        (dbt records a source when it parses the model, where this returns early). -#}
    {%- set manifests = source('ingest', 'manifests') -%}
    {%- set epoch = modules.datetime.datetime(1970, 1, 1) -%}
    {%- set cutoff = namespace(value=epoch) -%}
    {%- if execute and is_incremental() -%}
        {%- set newest = utc_datetime(scalar_query('select max(' ~ landed_at_column ~ ') as newest from ' ~ this)) -%}
        {#- A landing stamped ahead of the clocks (a landing host's clock running fast) must
            not move the cutoff past landings stamped honestly after it. Those were published
            after the previous build started (its batch stamp, the fact's newest merged_at
            before this run), so the cutoff never passes that stamp (nor this run's start when
            the fact has none), less the lookback. -#}
        {%- set clock = utc_datetime(run_started_at) -%}
        {%- set fact = adapter.get_relation(database=this.database, schema=this.schema, identifier='fact_orders') -%}
        {%- set previous = utc_datetime(scalar_query(
            'select max(merged_at) from ' ~ fact ~ ' where merged_at < ' ~ timestamp_value_literal(clock)
        )) if fact is not none else none -%}
        {%- set cap = previous if previous is not none else clock -%}
        {%- if newest is not none and newest > cap -%}
            {%- set newest = cap -%}
        {%- endif -%}
        {%- if newest is not none -%}
            {%- set cutoff.value = newest - modules.datetime.timedelta(minutes=var('fact_orders_lookback_minutes') | int) -%}
            {%- set late = earliest_landing_published_after(cutoff.value) if var('find_late_landings', true) else none -%}
            {#- (to the millisecond below: Athena reads the raw Glue column as timestamp(3);
                a landing stamped at the cutoff itself is the one read last, with no lookback) -#}
            {%- if late is not none and late < cutoff.value -%}
                {%- set cutoff.value = late.replace(microsecond=late.microsecond // 1000 * 1000)
                    - modules.datetime.timedelta(microseconds=1) -%}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
    {{- return(cutoff.value) -}}
{%- endmacro %}
