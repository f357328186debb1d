{% test unique_combination(model, columns) %}
{#- Fails with one row per combination of `columns` that appears more than once. -#}

with

counted as (

    select
        {{ columns | join(', ') }},
        count(*) as occurrences
    from {{ model }}
    group by {{ columns | join(', ') }}

)

select * from counted
where occurrences > 1

{% endtest %}
