{% test relationships_in_batch(model, column_name, to, field, scope) %}
{#- dbt's `relationships` test over what the batches under test wrote (macros/batch_scope.sql). -#}
{{ test_relationships(batch_scope(model, scope), column_name, to, field) }}
{% endtest %}
