"""Duff analytics REST API.

One framework-free core (:mod:`api.app`: request in, response out) with two front ends:
:mod:`api.asgi` (served by uvicorn for ``python -m api``) and :mod:`api.handler` (AWS Lambda
behind API Gateway). Data comes from a backend: the newest exported local build
(:mod:`api.backends.local`, DuckDB in memory) or Athena (:mod:`api.backends.athena`).

This package keeps its import path light (no pandas, awswrangler or dbt; duckdb and pyarrow
only inside the local backend, boto3 only inside the Athena backend) so a Lambda cold start
stays small. See docs/api.md.
"""
