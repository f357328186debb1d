{% macro latest_attribute_rows(relation, key_column, attribute_columns) -%}
    {#- For each `key_column` value in `relation` (columns of stg_raw__orders), the attribute
        values of its latest order version: greatest landed_at, then ingest_id, then
        source_line. Returns the key, the attributes and that version's lineage
        (landed_at, ingest_id, source_line). -#}
    select
        {{ key_column }},
        {%- for column in attribute_columns %}
        {{ column }},
        {%- endfor %}
        landed_at,
        ingest_id,
        source_line
    from (
        select
            *,
            row_number() over (
                partition by {{ key_column }}
                order by landed_at desc, ingest_id desc, source_line desc
            ) as attribute_rank
        from {{ relation }}
    ) as ranked_rows
    where attribute_rank = 1
{%- endmacro %}
