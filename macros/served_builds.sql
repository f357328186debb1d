{#- The atomic switch between builds on Athena (docs/serving.md, "Athena: one build per
    request").

    Each served mart (the served folder, but mart_build_info) is built as a per-build table
    `<mart>__b<tag>`, tag = served_build_tag(invocation_id); `mart_build_info`, built last, is
    the pointer: the API reads it and queries the tables of the build it names, so a switch is
    the one Iceberg commit that replaces mart_build_info's row. `<mart>` is a view over the
    current build's table for analysts, re-pointed by the on-run-end hook once the pointer
    moved; the same hook drops the per-build tables (Glue and S3) older than the previous build,
    and the tables of a build that failed before the pointer moved. On DuckDB nothing here
    applies: the local API serves a complete build directory (python -m export). -#}

{% macro served_build_tag(build_id=none) -%}
  {#- The short form of a build id (dbt's invocation_id) that names its tables: its first 12
      hex digits. api/backends/athena.py (build_tag) derives the same from mart_build_info. -#}
  {{- return(((build_id or invocation_id) | replace('-', '') | lower)[:12]) -}}
{%- endmacro %}


{% macro served_build_relation(relation, tag=none) -%}
  {{- return(relation.incorporate(
        path={'identifier': relation.identifier ~ '__b' ~ (tag or served_build_tag())},
        type='table')) -}}
{%- endmacro %}


{% macro is_served_table(node) -%}
  {{- return(node.resource_type == 'model' and node.config.materialized == 'served_table') -}}
{%- endmacro %}


{#- A served mart on Athena: dbt-athena's own table creation (safe_create_table_as: the
    partitioning, location under s3_data_dir, contract check and batching of the `table`
    materialization) of an Iceberg table `<mart>__b<tag>`, never replacing a table a reader may
    be using; then the view `<mart>` over it, so what refs the mart in this build (its data
    tests, mart_build_info, analysts) reads this build's rows through dbt's own ref. The API
    does not read the views (it follows mart_build_info), and the on-run-end hook points them
    back at the pointer's build if this build fails. Both tagged with the model's
    lf_tags_config. -#}
{% materialization served_table, adapter='athena' -%}
  {%- set target_relation = served_build_relation(api.Relation.create(
        identifier=model['alias'], schema=schema, database=database, type='table')) -%}
  {%- set lf_tags_config = config.get('lf_tags_config') -%}
  {%- set force_batch = config.get('force_batch', False) | as_bool -%}
  {%- set language = model['language'] -%}
  {%- if language != 'sql' -%}
    {% do exceptions.raise_compiler_error('served_table builds SQL models only') %}
  {%- endif -%}
  {%- if resolve_table_type() != 'iceberg' -%}
    {% do exceptions.raise_compiler_error(
        'served_table builds Iceberg tables only: the dbt work group enforces its result '
        ~ 'location, under which a Hive CTAS cannot choose where its data goes') %}
  {%- endif -%}

  {{ run_hooks(pre_hooks) }}

  {#- a table of this very build exists only if this invocation retried the model -#}
  {%- set leftover = adapter.get_relation(database=database, schema=schema,
                                          identifier=target_relation.identifier) -%}
  {%- if leftover is not none -%}
    {%- do drop_relation(leftover) -%}
  {%- endif -%}
  {%- set query_result = safe_create_table_as(False, target_relation, compiled_code, language, force_batch) -%}

  {% call statement('main') -%}
    SELECT '{{ query_result }}';
  {%- endcall %}

  {% do finish_athena_table(target_relation, post_hooks, lf_tags_config) %}

  {{ point_served_view(target_relation, model['alias'], lf_tags_config) }}

  {{ return({'relations': [target_relation]}) }}
{%- endmaterialization %}


{#- mart_build_info on Athena: the pointer the API reads, replaced in one Iceberg commit. The
    first build creates it (dbt-athena's create_table_as: an Iceberg CTAS at its location
    under s3_data_dir); every later build MERGEs this build's one row over the previous one
    (ON true: the one target row matches), so a reader sees the old pointer or the new one,
    never a missing table. dbt-athena's Iceberg `table` would rename the old table away and
    the new one in, two statements apart; its Hive `ha` swap needs a table location of its
    own, which a CTAS in the enforced dbt work group cannot choose. -#}
{% materialization served_pointer, adapter='athena' -%}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set lf_tags_config = config.get('lf_tags_config') -%}
  {%- if model['language'] != 'sql' or resolve_table_type() != 'iceberg' -%}
    {% do exceptions.raise_compiler_error('served_pointer builds an Iceberg table from SQL') %}
  {%- endif -%}

  {{ run_hooks(pre_hooks) }}

  {%- set existing = adapter.get_relation(database=database, schema=schema,
                                          identifier=target_relation.identifier) -%}
  {%- set columns = [] -%}
  {%- if existing is not none and not existing.is_view
      and adapter.get_glue_table_type(existing).value == 'iceberg_table' -%}
    {%- set columns = adapter.get_columns_in_relation(existing) | map(attribute='name')
                      | map('lower') | list -%}
  {%- endif -%}
  {%- set declared = model.columns.keys() | map('lower') | sort | list -%}
  {%- if existing is not none and (columns | sort | list) != declared -%}
    {#- a Hive pointer of an earlier release, or its columns changed with the contract: it is
        replaced once (dropped through Glue, then created), the only builds with a gap -#}
    {%- do log('mart_build_info: replacing ' ~ existing ~ ' (columns ' ~ columns ~ ')', info=true) -%}
    {%- do drop_relation(existing) -%}
    {%- set existing = none -%}
  {%- endif -%}

  {%- if existing is none -%}
    {%- set query_result = safe_create_table_as(False, target_relation, compiled_code, 'sql', false) -%}
    {% call statement('main') -%}
      SELECT '{{ query_result }}';
    {%- endcall %}
  {%- else -%}
    {%- if config.get('contract').enforced -%}
      {{ get_assert_columns_equivalent(compiled_code) }}
    {%- endif -%}
    {% call statement('main') -%}
      merge into {{ target_relation }} as target
      using ({{ compiled_code }}) as src
      on true
      when matched then update set
        {%- for name in columns %} {{ adapter.quote(name) }} = src.{{ adapter.quote(name) }}{{ ',' if not loop.last }}{% endfor %}
      when not matched then insert ({% for name in columns %}{{ adapter.quote(name) }}{{ ', ' if not loop.last }}{% endfor %})
        values ({% for name in columns %}src.{{ adapter.quote(name) }}{{ ', ' if not loop.last }}{% endfor %})
    {%- endcall %}
  {%- endif -%}

  {% do finish_athena_table(target_relation, post_hooks, lf_tags_config) %}

  {{ return({'relations': [target_relation]}) }}
{%- endmaterialization %}


{#- `<mart>` as a view over ``table``; a plain table of that name (from before per-build
    tables) makes way for it once (its Glue entry; its data is left where it was). -#}
{% macro point_served_view(table, alias, lf_tags_config) -%}
  {%- set view = api.Relation.create(database=table.database, schema=table.schema,
                                     identifier=alias, type='view') -%}
  {%- set old = adapter.get_relation(database=table.database, schema=table.schema,
                                     identifier=alias) -%}
  {%- if old is not none and not old.is_view -%}
    {%- do drop_relation_glue(old) -%}
  {%- endif -%}
  {% call statement('view_' ~ alias, auto_begin=False) -%}
    create or replace view {{ view }} as select * from {{ table }}
  {%- endcall %}
  {%- if lf_tags_config is not none -%}
    {%- do adapter.add_lf_tags(view, lf_tags_config) -%}
  {%- endif -%}
{%- endmacro %}


{#- mart_build_info comes after every served mart (tag `served`) and their tests, on every
    target (its -- depends_on comments): its built_at is where the next build's batch-scoped
    tests start, and on Athena it moves the pointer. On Athena it also needs this invocation
    to build every served table (a partial selection would name a build whose tables do not
    all exist). A compile of it alone is fine. -#}
{% macro assert_every_served_table_selected() -%}
  {%- if execute and flags.WHICH in ('run', 'build', 'retry') -%}
    {%- set missing, unordered = [], [] -%}
    {%- for node in graph.nodes.values()
        if node.resource_type == 'model' and 'served' in node.tags and node.unique_id != model.unique_id -%}
      {%- if node.unique_id not in model.depends_on.nodes -%}
        {%- do unordered.append(node.name) -%}
      {%- endif -%}
      {%- if target.type == 'athena' and is_served_table(node) and node.unique_id not in selected_resources -%}
        {%- do missing.append(node.name) -%}
      {%- endif -%}
    {%- endfor -%}
    {%- if unordered -%}
      {% do exceptions.raise_compiler_error(
          'mart_build_info must follow every served mart: add a -- depends_on comment for '
          ~ unordered | join(', ') ~ ' (models/marts/served/mart_build_info.sql)') %}
    {%- endif -%}
    {%- if missing -%}
      {% do exceptions.raise_compiler_error(
          'mart_build_info names a build on Athena: select every served mart with it (missing: '
          ~ missing | join(', ') ~ ')') %}
    {%- endif -%}
  {%- endif -%}
{%- endmacro %}


{#- on-run-end: point each served view at the build mart_build_info names, then drop every
    per-build table but that build's and the previous one's (queries in flight on it finish). -#}
{% macro switch_served_builds() -%}
  {%- if not execute or target.type != 'athena' -%}
    {{- return('') -}}
  {%- endif -%}
  {%- set pointer = adapter.get_relation(database=target.database, schema=target.schema,
                                         identifier='mart_build_info') -%}
  {%- if pointer is none -%}
    {{- return('') -}}
  {%- endif -%}
  {%- set build_ids = run_query('select build_id from ' ~ pointer).columns[0].values() -%}
  {%- if build_ids | length != 1 -%}
    {{- return('') -}}
  {%- endif -%}
  {%- set current = served_build_tag(build_ids[0]) -%}
  {%- set schema_relation = api.Relation.create(database=target.database, schema=target.schema) -%}
  {%- set existing = adapter.list_relations_without_caching(schema_relation) -%}
  {%- for node in graph.nodes.values() if is_served_table(node) -%}
    {%- set view = api.Relation.create(database=node.database, schema=node.schema,
                                       identifier=node.alias, type='view') -%}
    {%- set current_table = served_build_relation(view, current) -%}
    {%- set tables = {} -%}
    {%- for relation in existing -%}
      {%- if relation.identifier.startswith(node.alias ~ '__b')
          and modules.re.fullmatch('[0-9a-f]{12}', relation.identifier[node.alias | length + 3:]) -%}
        {%- do tables.update({relation.identifier: relation}) -%}
      {%- endif -%}
    {%- endfor -%}
    {%- if current_table.identifier in tables -%}
      {{ point_served_view(current_table, node.alias, node.config.lf_tags_config) }}
      {#- keep the newest table created before the current one (the previous build) -#}
      {%- set created = {} -%}
      {%- for name, relation in tables.items() -%}
        {%- do created.update({name: adapter.get_glue_table(relation)['Table']['CreateTime']}) -%}
      {%- endfor -%}
      {%- set since = created[current_table.identifier] -%}
      {%- set ns = namespace(previous=none, at=none) -%}
      {%- for name, at in created.items() -%}
        {%- if at < since and (ns.at is none or at > ns.at) -%}
          {%- set ns.previous = name -%}
          {%- set ns.at = at -%}
        {%- endif -%}
      {%- endfor -%}
      {%- set keep = [current_table.identifier, ns.previous] -%}
      {%- for name, relation in tables.items() if name not in keep -%}
        {%- do log('dropping ' ~ name ~ ' (build ' ~ name[-12:] ~ ', not current or previous)', info=true) -%}
        {%- do drop_relation_glue(relation) -%}
      {%- endfor -%}
    {%- endif -%}
  {%- endfor -%}
  {{- return('') -}}
{%- endmacro %}
