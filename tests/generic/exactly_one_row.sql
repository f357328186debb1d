{% test exactly_one_row(model) %}
{#- Fails unless `model` holds exactly one row. -#}

with

counted as (

    select count(*) as row_count
    from {{ model }}

)

select * from counted
where row_count != 1

{% endtest %}
