{#- Batch-scoped data tests (docs/warehouse.md, "Data tests on incremental runs"). -#}

{% macro get_where_subquery(relation) -%}
    {#- dbt's hook for a data test's `where` config, extended with one placeholder:
        `__latest_batch__` stands for "the row is an order of fact_orders' latest batch"
        (the rows with the newest merged_at). An incremental run then tests what it merged:
        `unique` on order_id still sees every row of the whole table that shares an id with
        the batch, and `relationships` / `not_null` / `accepted_values` check the batch's
        rows. A full refresh, a first build, or `--vars '{data_tests_scope: all}'` test
        whole tables. -#}
    {%- set where = config.get('where', '') -%}
    {%- if where and '__latest_batch__' in where -%}
        {%- set where = where | replace('__latest_batch__', latest_batch_condition(relation)) -%}
    {%- endif -%}
    {%- if where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {{- return(filtered) -}}
    {%- endif -%}
    {{- return(relation) -}}
{%- endmacro %}


{% macro latest_batch_condition(relation, order_id_column='order_id') -%}
    {#- SQL condition: `order_id_column` is an order of fact_orders' latest batch; `1 = 1`
        when whole tables are to be tested (see get_where_subquery). -#}
    {%- set ids = latest_batch_order_ids(relation) -%}
    {%- if ids is none -%}
        {{- return('1 = 1') -}}
    {%- endif -%}
    {{- return(order_id_column ~ ' in (' ~ ids ~ ')') -}}
{%- endmacro %}


{% macro latest_batch_order_ids(relation) -%}
    {#- A subquery of the order_ids fact_orders merged in its latest batch, or none when whole
        tables are tested: on a full refresh, with var data_tests_scope = 'all', when the
        fact holds a single batch (a first build), or while not executing. fact_orders is
        looked up next to `relation` (every model of the project shares one schema). -#}
    {%- if not execute or flags.FULL_REFRESH or var('data_tests_scope', 'latest_batch') == 'all' -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set fact = adapter.get_relation(relation.database, relation.schema, 'fact_orders') -%}
    {%- if fact is none -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set newest = scalar_query('select max(merged_at) from ' ~ fact) -%}
    {%- set oldest = scalar_query('select min(merged_at) from ' ~ fact) -%}
    {%- if newest is none or newest == oldest -%}
        {{- return(none) -}}
    {%- endif -%}
    {{- return('select order_id from ' ~ fact ~ ' where merged_at = ' ~ timestamp_value_literal(newest)) -}}
{%- endmacro %}
