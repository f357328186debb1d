{% test unique_combination(model, columns, scope=none) %}
{#- Fails with one row per combination of `columns` that appears more than once; with a
    `scope` ('rows' or 'orders'), among what the batches under test wrote
    (macros/batch_scope.sql). -#}

with

counted as (

    select
        {{ columns | join(', ') }},
        count(*) as occurrences
    from {{ batch_scope(model, scope) if scope else model }}
    group by {{ columns | join(', ') }}

)

select * from counted
where occurrences > 1

{% endtest %}
