"""The local export of the served marts: ``python -m export`` after ``dbt build``."""
