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


{#- A table rebuilt whole on Athena (the dimensions without history, the rollups): Iceberg,
    its old version dropped through the Glue and S3 APIs (dbt-athena's drop_relation), then
    one CTAS. dbt-athena's own Iceberg `table` swaps versions with ALTER TABLE ... RENAME TO,
    and Athena runs no DDL on Iceberg tables registered with Lake Formation (AWS docs, "Query
    Apache Iceberg tables", considerations), which the warehouse/ prefix is (the template's
    WarehouseLocation). The table is absent between the drop and the CTAS: only this build's
    later models read these tables (the API reads the served per-build tables). -#}
{% materialization iceberg_table, adapter='athena' -%}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set lf_tags_config = config.get('lf_tags_config') -%}
  {%- set force_batch = config.get('force_batch', False) | as_bool -%}
  {%- if model['language'] != 'sql' or resolve_table_type() != 'iceberg' -%}
    {% do exceptions.raise_compiler_error('iceberg_table builds an Iceberg table from SQL') %}
  {%- endif -%}

  {{ run_hooks(pre_hooks) }}

  {%- set existing = adapter.get_relation(database=database, schema=schema,
                                          identifier=target_relation.identifier) -%}
  {%- if existing is not none -%}
    {%- do drop_relation(existing) -%}
  {%- endif -%}
  {%- set query_result = safe_create_table_as(False, target_relation, compiled_code, 'sql', force_batch) -%}
  {% call statement('main') -%}
    SELECT '{{ query_result }}';
  {%- endcall %}

  {% do finish_athena_table(target_relation, post_hooks, lf_tags_config) %}

  {{ return({'relations': [target_relation]}) }}
{%- endmaterialization %}


{#- The end of each Athena table materialization of this project (iceberg_table,
    served_table, served_pointer), as dbt-athena's `table` ends: the post-hooks, the model's
    LF-tags on the table, its docs in Glue. -#}
{% macro finish_athena_table(relation, post_hooks, lf_tags_config) -%}
  {{ run_hooks(post_hooks) }}
  {%- if lf_tags_config is not none -%}
    {%- do adapter.add_lf_tags(relation, lf_tags_config) -%}
  {%- endif -%}
  {%- do persist_docs(relation, model) -%}
{%- endmacro %}
