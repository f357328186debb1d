with

channel_descriptions as (

    select * from {{ ref('channel_descriptions') }}

),

channels as (

    select
        {{ surrogate_key(['channel']) }} as channel_key,
        channel,
        channel_description,
        sort_order,
        false as is_unknown
    from channel_descriptions

),

unknown_member as (

    select
        {{ unknown_key() }} as channel_key,
        'unknown' as channel,
        'Channel not in the reference list' as channel_description,
        999 as sort_order,
        true as is_unknown

),

final as (

    select * from channels
    union all
    select * from unknown_member

)

select * from final
