"""Duff orders ingestion: CSV files landed as validated, pa_date-partitioned Parquet."""
