{#- Batch-scoped data tests (docs/warehouse.md, "Data tests on incremental runs"). -#}

{% macro get_where_subquery(relation) -%}
    {#- dbt's hook for a data test's `where` config, extended with placeholders for the large
        tables, so that an incremental run tests what it changed:
        - `__latest_batch__`: the rows fact_orders' latest batches wrote (see latest_batch:
          every batch since the last build that passed, or the newest); row-level tests
          (not_null, relationships) on fact_orders.
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
            '__latest_batch__': batch.merged_at if batch else '1 = 1',
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
    {#- The batches of fact_orders not yet validated, as {'merged_at': SQL condition on
        merged_at, 'order_ids': subquery, 'days': date literals or ''}: every batch stamped
        after the last build that got through its tests to mart_build_info (built last, on
        every served mart, so a batch whose tests failed is tested again by the next build),
        or else the newest batch (`dbt test` after a `dbt run`). None when whole tables are
        to be tested: on a full refresh, with var data_tests_scope = 'all', when the fact
        holds a single batch (a first build), or while not executing. The relations are
        looked up by name in the target schema, which the whole project shares; on Athena
        the change log is a view without days, so day-scoped tests cover whole tables. -#}
    {%- if not execute or flags.FULL_REFRESH or var('data_tests_scope', 'latest_batch') == 'all' -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set fact = adapter.get_relation(target.database, target.schema, 'fact_orders') -%}
    {%- if fact is none -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set build_info = adapter.get_relation(target.database, target.schema, 'mart_build_info') -%}
    {%- set last_build = scalar_query('select max(built_at) from ' ~ build_info) if build_info is not none else none -%}
    {%- set row = run_query('select max(merged_at), min(merged_at) from ' ~ fact).rows -%}
    {%- if row | length == 0 or row[0][0] is none or row[0][0] == row[0][1] -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set newest = utc_datetime(row[0][0]) -%}
    {%- set last_build = utc_datetime(last_build) -%}
    {%- if last_build is not none and newest > last_build -%}
        {%- set condition = 'merged_at > ' ~ timestamp_value_literal(last_build) -%}
    {%- else -%}
        {%- set condition = 'merged_at = ' ~ timestamp_value_literal(newest) -%}
    {%- endif -%}
    {%- set log = adapter.get_relation(target.database, target.schema, 'int_orders__changed_days') -%}
    {%- set days = date_literals(
        'select distinct pa_date from ' ~ log ~ ' where ' ~ condition ~ ' order by 1'
    ) if log is not none and log.type != 'view' else '' -%}
    {{- return({
        'merged_at': condition,
        'order_ids': 'select order_id from ' ~ fact ~ ' where ' ~ condition,
        'days': days,
    }) -}}
{%- endmacro %}
