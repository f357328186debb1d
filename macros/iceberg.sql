{#- Iceberg on Athena: what keeps fact_orders' MERGE narrow and its files few
    (docs/warehouse.md, "Iceberg on Athena"). -#}

{% macro merge_days_predicates() -%}
    {#- fact_orders' incremental_predicates on Athena: a MERGE on order_id can only match the
        target rows of the batch's orders, and those sit on the days the fact holds them on
        now. Restricting the target to those days lets Athena read them instead of every
        partition of the fact; the days come from a narrow read of the fact's order_id and
        pa_date against the batch, which dbt-athena's merge stages as <model>__dbt_tmp
        (incremental.sql: make_temp_relation, suffix __dbt_tmp). Not a literal list of
        days: a model's config is fixed when dbt parses it. A day an order moves to needs no
        target row (it is an insert), so it is not in the list. -#}
    {%- set batch = this.incorporate(path={'identifier': this.identifier ~ '__dbt_tmp'}) -%}
    {%- set predicate -%}
        target.pa_date in (
            select current_rows.pa_date
            from {{ this }} as current_rows
            where current_rows.order_id in (select batch.order_id from {{ batch }} as batch)
        )
    {%- endset -%}
    {{- return([predicate]) -}}
{%- endmacro %}


{% macro optimize_iceberg_tables(vacuum=true) -%}
    {#- `dbt run-operation optimize_iceberg_tables --target athena`: compacts every Iceberg
        model of the project (OPTIMIZE ... REWRITE DATA USING BIN_PACK merges the small files
        and delete files each MERGE leaves) and then, unless vacuum is false, expires old
        snapshots and removes orphan files (VACUUM; the table's
        vacuum_max_snapshot_age_seconds, 5 days by default, bounds what it removes). AWS docs:
        "Optimize Iceberg tables", "OPTIMIZE", "VACUUM" (Iceberg only, engine 3). The
        scheduled CodeBuild build runs it once a day (buildspec.yml). On another target it
        does nothing. -#}
    {%- if target.type != 'athena' -%}
        {{- log('duff: Iceberg maintenance is for the athena target; nothing to do on ' ~ target.type, info=true) -}}
        {{- return('') -}}
    {%- endif -%}
    {#- the tables a build changes in place; a `table` or served_table is written whole by
        one CTAS each build, so it has nothing to compact -#}
    {%- for node in graph.nodes.values()
        if node.resource_type == 'model' and node.config.get('table_type') == 'iceberg'
        and node.config.materialized in ('incremental', 'served_pointer') -%}
        {%- set relation = adapter.get_relation(node.database, node.schema, node.alias) -%}
        {%- if relation is none -%}
            {{- log('duff: ' ~ node.alias ~ ' is not built yet; nothing to optimize', info=true) -}}
        {%- else -%}
            {#- [database.]table, unquoted: the form the OPTIMIZE and VACUUM synopses give -#}
            {%- set name = relation.schema ~ '.' ~ relation.identifier -%}
            {%- call statement('optimize_' ~ node.alias) -%}
                optimize {{ name }} rewrite data using bin_pack
            {%- endcall -%}
            {%- if vacuum -%}
                {%- call statement('vacuum_' ~ node.alias) -%}
                    vacuum {{ name }}
                {%- endcall -%}
            {%- endif -%}
            {{- log('duff: optimized ' ~ (name ~ ' and vacuumed it' if vacuum else name), info=true) -}}
        {%- endif -%}
    {%- endfor -%}
{%- endmacro %}
