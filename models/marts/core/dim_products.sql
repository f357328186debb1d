{#- One row per product id plus the unknown member. Incremental on product_id: a run reads only
    recently landed versions and replaces a product's row when one of them is newer than the
    version its description came from. -#}
{%- set athena_config = {
    'table_type': 'iceberg',
    'incremental_strategy': 'merge',
} if target.type == 'athena' else {'incremental_strategy': 'delete+insert'} -%}
{{ config(
    materialized='incremental',
    unique_key='product_id',
    on_schema_change='fail',
    **athena_config
) }}
{#- Built after fact_orders (no column comes from it): the products it reads are then always
    a superset of the fact's, even when an ingest lands mid-run or `--select fact_orders+`
    is run, so mart_orders never drops an order for a product not yet in this table. #}
-- depends_on: {{ ref('fact_orders') }}

with

order_versions as (

    select * from {{ ref('stg_raw__orders') }}
    {% if is_incremental() %}
    where landed_at > {{ incremental_cutoff('description_landed_at') }}
    {% endif %}

),

latest_products as (

    {{ latest_attribute_rows('order_versions', 'product_id', ['product_description']) }}

),

{% if is_incremental() %}

current_products as (

    select
        product_id,
        description_ingest_id as ingest_id,
        description_source_line as source_line,
        description_landed_at as landed_at
    from {{ this }}

),

changed_products as (

    select latest_products.*
    from latest_products
    left join current_products
        on latest_products.product_id = current_products.product_id
    where
        current_products.product_id is null
        or {{ is_newer_version('latest_products', 'current_products') }}

),

{% else %}

changed_products as (

    select * from latest_products

),

{% endif %}

products as (

    select
        {{ surrogate_key(['product_id']) }} as product_key,
        product_id,
        product_description,
        ingest_id as description_ingest_id,
        source_line as description_source_line,
        false as is_unknown,
        landed_at as description_landed_at
    from changed_products

),

unknown_member as (

    select
        {{ surrogate_key(["'-1'"]) }} as product_key,
        cast(-1 as bigint) as product_id,
        'unknown' as product_description,
        cast(null as {{ dbt.type_string() }}) as description_ingest_id,
        cast(null as bigint) as description_source_line,
        true as is_unknown,
        cast(null as {{ landed_at_type() }}) as description_landed_at

),

final as (

    select * from products
    union all
    select * from unknown_member

)

select * from final
