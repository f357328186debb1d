{% test accepted_values_in_batch(model, column_name, values, scope) %}
{#- dbt's `accepted_values` test over what the batches under test wrote (macros/batch_scope.sql). -#}
{{ test_accepted_values(batch_scope(model, scope), column_name, values) }}
{% endtest %}
