{% test unique_in_batch(model, column_name, scope) %}
{#- dbt's `unique` test over what the batches under test wrote (macros/batch_scope.sql). -#}
{{ test_unique(batch_scope(model, scope), column_name) }}
{% endtest %}
