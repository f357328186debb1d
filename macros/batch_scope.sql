{#- Batch-scoped data tests (docs/warehouse.md, "Data tests on incremental runs"): the
    generic tests in tests/generic/*_in_batch.sql hand dbt's own tests the model filtered by
    batch_scope(), so an incremental run tests what it changed. -#}

{% macro batch_scope(model, scope) -%}
    {#- `model` restricted to what the batches under test (latest_batch) wrote, as a subquery:
        - scope 'rows': the rows they wrote (merged_at); row-level tests of fact_orders.
        - scope 'orders': every row holding an order_id they wrote, wherever it sits, so a
          `unique` test still sees an old row sharing an id with the batch, and a model
          without merged_at (mart_orders) is tested on the batch's orders.
        `model` itself (the whole table) on a first build, a full refresh, with
        `--vars '{data_tests_scope: all}'`, or while not executing. -#}
    {%- if scope not in ('rows', 'orders') -%}
        {{- exceptions.raise_compiler_error("batch_scope: scope must be 'rows' or 'orders', not " ~ scope) -}}
    {%- endif -%}
    {#- Only the 'orders' scope needs the batch's ids (one more query). -#}
    {%- set batch = latest_batch(with_id_list=(scope == 'orders')) -%}
    {%- if batch is none -%}
        {{- return(model) -}}
    {%- endif -%}
    {%- set filters = [batch.merged_at] if scope == 'rows' else batch.order_id_filters -%}
    {#- The filters select disjoint rows, so their union all is the model's rows in scope;
        each branch filters the model itself, which DuckDB pushes down to the fact's scan
        under mart_orders' joins (an OR of them it does not). -#}
    {%- set branches = [] -%}
    {%- for condition in filters -%}
        {%- do branches.append('select * from ' ~ model ~ ' where ' ~ condition) -%}
    {%- endfor -%}
    {{- return('(' ~ branches | join(' union all ') ~ ') as batch_scope') -}}
{%- endmacro %}


{% macro latest_batch(with_id_list=false) -%}
    {#- The batches of fact_orders not yet validated, as {'merged_at': SQL condition on
        merged_at, 'order_ids': a subquery of their ids, 'order_id_filters' (with_id_list):
        conditions on order_id whose disjoint union is the same ids (ranges and a literal
        list; the subquery when there are many)}: every batch
        stamped after the last build that got through its tests to mart_build_info (built
        last, on every served mart, so a batch whose tests failed is tested again by the
        next build), or else the newest batch
        (`dbt test` after a `dbt run`). None when whole tables are to be tested: on a full
        refresh, with var data_tests_scope = 'all', when the fact holds a single batch (a
        first build), or while not executing. The relations are looked up by name in the
        target schema, which the whole project shares. -#}
    {%- if not execute or flags.FULL_REFRESH or var('data_tests_scope', 'latest_batch') == 'all' -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set fact = adapter.get_relation(target.database, target.schema, 'fact_orders') -%}
    {%- if fact is none -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set build_info = adapter.get_relation(target.database, target.schema, 'mart_build_info') -%}
    {#- One query for the fact's newest and oldest stamps and the last validated build: every
        batch-scoped test runs it when it compiles. -#}
    {%- set row = run_query(
        'select max(merged_at), min(merged_at), '
        ~ ('(select max(built_at) from ' ~ build_info ~ ')' if build_info is not none else 'null')
        ~ ' from ' ~ fact
    ).rows -%}
    {%- if row | length == 0 or row[0][0] is none or row[0][0] == row[0][1] -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set newest = utc_datetime(row[0][0]) -%}
    {%- set last_build = utc_datetime(row[0][2]) -%}
    {%- if last_build is not none and newest > last_build -%}
        {%- set condition = 'merged_at > ' ~ timestamp_value_literal(last_build) -%}
    {%- else -%}
        {%- set condition = 'merged_at = ' ~ timestamp_value_literal(newest) -%}
    {%- endif -%}
    {#- The id list costs a query that the caller may not need, and batch_scope compiles
        every batch-scoped test (~25 of them), so it is computed only on request. -#}
    {#- order_id_filters: conditions on order_id, each selecting a disjoint part of the
        batch's ids, for batch_scope: DuckDB then filters the fact's scan under mart_orders'
        joins by them, where a subquery made it join every order first (10 M orders: ~8x
        slower). New orders mostly come as runs of consecutive ids, and DuckDB parses a
        literal in ~7 us (10,000 ids: 75 ms in every test that lists them), so on DuckDB
        the longest runs (batch_id_ranges(): up to 8, of 1,000 ids or more) become
        `between` ranges, each a union branch, and the other ids one literal list. Athena
        gets the one list: each union branch would scan the model again there, and bytes
        scanned are what it costs. The list is bounded so that an Athena query stays well
        under its 256 KB text limit: past 15,000 ids outside the ranges (or when the ids
        read back do not make a list), the filter is the subquery. The conservation test
        keeps the subquery: over Parquet files a long literal list is the slower filter. -#}
    {#- The lists come back as one row (counts and text joined by the engine), not as one
        row per id: dbt turns a query's rows into an agate table, ~0.1 s of CPU for 10,000
        ids in every test that lists them. -#}
    {%- set id_query = 'select order_id from ' ~ fact ~ ' where ' ~ condition -%}
    {%- set id_filters = [] -%}
    {%- if with_id_list -%}
        {%- set text = dbt.type_string() -%}
        {%- set max_ranges = batch_id_ranges() -%}
        {%- set batch_ids = 'select distinct order_id from (' ~ id_query ~ ') as batch_rows '
            ~ 'where order_id is not null' -%}
        {%- set id_list = 'case when count(*) <= 15000 then '
            ~ dbt.listagg('cast(order_id as ' ~ text ~ ')', "', '", 'order by order_id') ~ ' end' -%}
        {#- One row: the count of ids outside the ranges, the ranges ('a and b;c and d'), and
            those ids as one list. Without ranges, the ids are read once. -#}
        {%- set listed = run_query(
            'with batch_ids as (' ~ batch_ids ~ '), '
            ~ 'numbered as (select order_id, order_id - row_number() over (order by order_id) as run_id from batch_ids), '
            ~ 'runs as (select run_id, min(order_id) as first_id, max(order_id) as last_id, '
            ~ 'row_number() over (order by count(*) desc, min(order_id)) as run_rank '
            ~ 'from numbered group by run_id having count(*) >= 1000), '
            ~ 'ranges as (select * from runs where run_rank <= ' ~ max_ranges ~ '), '
            ~ 'singles as (select order_id from numbered where run_id not in (select ranges.run_id from ranges)) '
            ~ 'select (select count(*) from singles), '
            ~ '(select ' ~ dbt.listagg('cast(first_id as ' ~ text ~ ") || ' and ' || cast(last_id as " ~ text ~ ')', "';'", 'order by first_id') ~ ' from ranges), '
            ~ '(select ' ~ id_list ~ ' from singles)'
            if max_ranges > 0 else
            'select count(*), null, ' ~ id_list ~ ' from (' ~ batch_ids ~ ') as batch_ids'
        ).rows[0] -%}
        {%- if listed[0] <= 15000 and (listed[0] == 0 or listed[2] is not none) -%}
            {%- for bounds in (listed[1] or '').split(';') if bounds -%}
                {%- do id_filters.append('order_id between ' ~ bounds) -%}
            {%- endfor -%}
            {%- if listed[0] > 0 -%}
                {%- do id_filters.append('order_id in (' ~ listed[2] ~ ')') -%}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
    {%- if id_filters | length == 0 -%}
        {%- set id_filters = ['order_id in (' ~ id_query ~ ')'] -%}
    {%- endif -%}
    {{- return({
        'merged_at': condition,
        'order_ids': id_query,
        'order_id_filters': id_filters,
    }) -}}
{%- endmacro %}


{% macro batch_window_start(batch) -%}
    {#- Where the lake window of the batches under test (`batch`, from latest_batch) starts: the
        newest landed_at of the fact's rows from earlier batches (at most their newest
        merged_at), as a UTC datetime. A raw version landed after it was read by those
        batches (or lands after them), so tests of the lake against the fact read the raw
        files landed since, not the whole history.
        None when they must read everything: no batch (whole tables), a change log that is
        not a table (Athena: a view, and raw_orders there is partitioned by pa_date, not by
        landing), no fact row from an earlier batch, or while not executing.
        Its refs come before any condition: dbt records a test's refs when it parses the
        test (not executing), through the macros it calls. -#}
    {%- set fact = ref('fact_orders') -%}
    {%- set change_log = ref('fact_orders__change_log') -%}
    {%- if batch is none or not execute -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set change_log = load_relation(change_log) -%}
    {%- if change_log is none or change_log.type != 'table' -%}
        {{- return(none) -}}
    {%- endif -%}
    {#- Capped at the newest earlier batch's stamp (the start of the build that wrote it): a
        landing stamped ahead of the clocks (a landing host's running fast) would otherwise
        start the window after every landing stamped honestly since (incremental_cutoff
        caps its cutoff alike). -#}
    {%- set row = run_query(
        'select max(landed_at), max(merged_at) from ' ~ fact ~ ' where not (' ~ batch.merged_at ~ ')'
    ).rows[0] -%}
    {%- set newest, stamp = utc_datetime(row[0]), utc_datetime(row[1]) -%}
    {{- return(stamp if newest is not none and newest > stamp else newest) -}}
{%- endmacro %}

{% macro batch_id_ranges() -%}
    {#- How many runs of consecutive batch ids latest_batch turns into `between` ranges, each
        a union branch of batch_scope. Dispatched: 8 on DuckDB, whose parser is the cost of a
        long literal list; 0 elsewhere (Athena), where each branch would scan the model again
        and bytes scanned are the cost. -#}
    {{- return(adapter.dispatch('batch_id_ranges', 'duff')()) -}}
{%- endmacro %}

{% macro default__batch_id_ranges() -%}
    {{- return(0) -}}
{%- endmacro %}

{% macro duckdb__batch_id_ranges() -%}
    {{- return(8) -}}
{%- endmacro %}
