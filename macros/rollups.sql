{#- Incremental rollups maintained by difference (docs/warehouse.md, "Incremental rollups"). -#}

{% macro get_incremental_merge_totals_sql(arg_dict) -%}
    {#- Custom incremental strategy `merge_totals`: the model's new rows are the new totals of
        every grain row a run touched (its unique_key). Each such row is deleted from the
        table, and the new totals that still count an order are inserted: a grain row whose
        last order moved away ends at orders = 0 and is deleted, nothing inserted. -#}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set keys = arg_dict['unique_key'] -%}
    {%- set keys = [keys] if keys is string else keys -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }}
    using {{ source }}
    where
        {%- for key in keys %}
        {{ target }}.{{ key }} = {{ source }}.{{ key }}{{ ' and' if not loop.last }}
        {%- endfor %};

    insert into {{ target }} ({{ columns }})
    select {{ columns }}
    from {{ source }}
    where orders > 0
{%- endmacro %}


{% macro signed_order_changes(change_log, rollup) -%}
    {#- The order versions an incremental rollup must apply, from `change_log`
        (fact_orders__change_log or a CTE over it): for each order logged after the rollup's
        watermark (the newest merged_at in `rollup`, i.e. `this`; every logged batch while it
        is empty), its newest logged version with sign +1, and the version the rollup
        counted before (the newest logged at or before the watermark, when there is one)
        with sign -1. Reads the batches since the watermark and the earlier versions of
        their orders only: the work follows the changed orders, not the days they sit on.
        Every run that applies a batch writes the grain row its newest version lands in, so
        the rollup's newest merged_at is exactly the last batch applied. -#}
    with

    watermark as (
        select coalesce(max(merged_at), {{ timestamp_value_literal(modules.datetime.datetime(1970, 1, 1)) }}) as merged_at
        from {{ rollup }}
    ),

    new_entries as (
        select * from {{ change_log }}
        where merged_at > (select watermark.merged_at from watermark)
    ),

    counted_entries as (
        select * from {{ change_log }}
        where
            merged_at <= (select watermark.merged_at from watermark)
            and order_id in (select new_entries.order_id from new_entries)
    ),

    ranked as (
        select
            *,
            1 as sign,
            row_number() over (partition by order_id order by merged_at desc) as entry_rank
        from new_entries
        union all
        select
            *,
            -1 as sign,
            row_number() over (partition by order_id order by merged_at desc) as entry_rank
        from counted_entries
    )

    select * from ranked
    where entry_rank = 1
{%- endmacro %}
