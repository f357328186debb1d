{#- Batch-scoped data tests (docs/warehouse.md, "Data tests on incremental runs"). -#}

{% macro get_where_subquery(relation) -%}
    {#- dbt's hook for a data test's `where` config, extended with placeholders for the large
        tables, so that an incremental run tests what it changed:
        - `__latest_batch__`: the rows fact_orders' latest batch wrote (merged_at = the
          newest merged_at); row-level tests (not_null, relationships) on fact_orders.
        - `__latest_batch_ids__`: the rows whose order_id the latest batch wrote; `unique`
          on fact_orders then still sees an old row sharing an id with the batch.
        - `__latest_batch_days__`: every row on a day the latest batch touched (the days
          int_orders__changed_days logged for it: the new day of each merged order and every
          day any of its versions sat on, so a stale copy of a merged order is among them);
          for mart_orders, which has no merged_at (it is built after the log for this).
        A first build, a full refresh, or `--vars '{data_tests_scope: all}'` test whole
        tables (each placeholder becomes `1 = 1`), and so does `__latest_batch_days__` when
        the log holds no day of the batch. -#}
    {%- set where = config.get('where', '') -%}
    {%- if where and '__latest_batch' in where -%}
        {%- set batch = latest_batch() -%}
        {%- set scopes = {
            '__latest_batch_days__': 'pa_date in (' ~ batch.days ~ ')' if batch and batch.days else '1 = 1',
            '__latest_batch_ids__': 'order_id in (' ~ batch.order_ids ~ ')' if batch else '1 = 1',
            '__latest_batch__': 'merged_at = ' ~ batch.merged_at if batch else '1 = 1',
        } -%}
        {%- set scoped = namespace(where=where) -%}
        {%- for placeholder, condition in scopes.items() -%}
            {%- set scoped.where = scoped.where | replace(placeholder, condition) -%}
        {%- endfor -%}
        {%- set where = scoped.where -%}
    {%- endif -%}
    {%- if where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {{- return(filtered) -}}
    {%- endif -%}
    {{- return(relation) -}}
{%- endmacro %}


{% macro latest_batch() -%}
    {#- fact_orders' latest batch as {'merged_at': timestamp literal, 'order_ids': subquery,
        'days': date literals or ''}, or none when whole tables are to be tested: on a full
        refresh, with var data_tests_scope = 'all', when the fact holds a single batch (a
        first build), or while not executing. fact_orders and int_orders__changed_days are
        looked up by name in the target schema, which the whole project shares; on Athena
        the log is a view without days, so day-scoped tests cover whole tables there. -#}
    {%- if not execute or flags.FULL_REFRESH or var('data_tests_scope', 'latest_batch') == 'all' -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set fact = adapter.get_relation(target.database, target.schema, 'fact_orders') -%}
    {%- if fact is none -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set newest = scalar_query('select max(merged_at) from ' ~ fact) -%}
    {%- set oldest = scalar_query('select min(merged_at) from ' ~ fact) -%}
    {%- if newest is none or newest == oldest -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set merged_at = timestamp_value_literal(newest) -%}
    {%- set literals = [] -%}
    {%- set log = adapter.get_relation(target.database, target.schema, 'int_orders__changed_days') -%}
    {%- if log is not none and log.type != 'view' -%}
        {%- set days = run_query(
            'select distinct pa_date from ' ~ log ~ ' where merged_at = ' ~ merged_at ~ ' order by 1'
        ).columns[0].values() -%}
        {%- for day in days -%}
            {%- do literals.append("date '" ~ day ~ "'") -%}
        {%- endfor -%}
    {%- endif -%}
    {{- return({
        'merged_at': merged_at,
        'order_ids': 'select order_id from ' ~ fact ~ ' where merged_at = ' ~ merged_at,
        'days': literals | join(', '),
    }) -}}
{%- endmacro %}
