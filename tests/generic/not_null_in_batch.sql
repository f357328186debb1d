{% test not_null_in_batch(model, column_name, scope) %}
{#- dbt's `not_null` test over what the batches under test wrote (macros/batch_scope.sql). -#}
{{ test_not_null(batch_scope(model, scope), column_name) }}
{% endtest %}
