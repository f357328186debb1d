with

status_descriptions as (

    select * from {{ ref('status_descriptions') }}

),

statuses as (

    select
        {{ surrogate_key(['status']) }} as status_key,
        status,
        status_description,
        sort_order,
        is_final,
        false as is_unknown
    from status_descriptions

),

unknown_member as (

    select
        {{ unknown_key() }} as status_key,
        'unknown' as status,
        'Status not in the reference list' as status_description,
        999 as sort_order,
        false as is_final,
        true as is_unknown

),

final as (

    select * from statuses
    union all
    select * from unknown_member

)

select * from final
