with

order_versions as (

    select * from {{ ref('stg_raw__orders') }}

),

latest as (

    {{ latest_order_versions('order_versions') }}

),

final as (

    select * from latest

)

select * from final
