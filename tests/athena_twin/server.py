"""The Athena twin behind Athena's own wire protocol (JSON 1.1, ``X-Amz-Target``), on
127.0.0.1: dbt-athena's unmodified cursor (its boto3 Athena client, pointed here with
``AWS_ENDPOINT_URL_ATHENA``) starts queries, polls them and pages through their results
exactly as it does against AWS. The seam is the narrowest one the adapter has: every call it
makes to Athena crosses it, and nothing of dbt-athena is patched.

Operations: StartQueryExecution, GetQueryExecution, GetQueryResults, StopQueryExecution,
GetWorkGroup. Any other is answered with a 400 naming it, so a new adapter call shows up
as a failure rather than a silent success.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.athena_twin import trino
from tests.athena_twin.engine import AthenaTwin, Execution, InvalidRequest, format_value

PAGE = 1000  # GetQueryResults' maximum page size


def _column_info(name: str, duckdb_type: str) -> dict:
    type_name, precision, scale = trino.trino_type(duckdb_type)
    return {
        "CatalogName": "hive",
        "SchemaName": "",
        "TableName": "",
        "Name": name,
        "Label": name,
        "Type": type_name,
        "Precision": precision,
        "Scale": scale,
        "Nullable": "UNKNOWN",
        "CaseSensitive": type_name == "varchar",
    }


class _Handler(BaseHTTPRequestHandler):
    twin: AthenaTwin

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        operation = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        handler = getattr(self, f"op_{operation}", None)
        try:
            if handler is None:
                raise InvalidRequest(f"the Athena twin does not implement {operation}")
            self._reply(200, handler(body))
        except InvalidRequest as e:
            self._reply(400, {"__type": "InvalidRequestException", "Message": str(e)})
        except KeyError as e:
            self._reply(400, {"__type": "InvalidRequestException", "Message": f"missing {e}"})

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # --------------------------------------------------------------------------------
    def op_StartQueryExecution(self, body: dict) -> dict:
        context = body.get("QueryExecutionContext", {})
        ex = self.twin.start(
            body["QueryString"],
            database=(context.get("Database") or "default").lower(),
            work_group=body.get("WorkGroup", "primary"),
            client_output=body.get("ResultConfiguration", {}).get("OutputLocation"),
        )
        return {"QueryExecutionId": ex.id}

    def _execution(self, body: dict) -> Execution:
        ex = self.twin.executions.get(body["QueryExecutionId"])
        if ex is None:
            raise InvalidRequest(f"QueryExecution {body['QueryExecutionId']} was not found")
        return ex

    def op_GetQueryExecution(self, body: dict) -> dict:
        ex = self._execution(body)
        status = {"State": ex.state, "SubmissionDateTime": ex.submitted}
        if ex.state == "FAILED":
            status["StateChangeReason"] = ex.reason
            status["AthenaError"] = {
                "ErrorCategory": 2,
                "ErrorType": 1300,
                "Retryable": False,
                "ErrorMessage": ex.reason,
            }
        return {
            "QueryExecution": {
                "QueryExecutionId": ex.id,
                "Query": ex.query,
                "StatementType": ex.statement_type,
                "ResultConfiguration": {"OutputLocation": f"{ex.output_location}{ex.id}.csv"},
                "QueryExecutionContext": {"Database": ex.database, "Catalog": "awsdatacatalog"},
                "Status": status,
                "Statistics": {"DataScannedInBytes": 0, "EngineExecutionTimeInMillis": 1},
                "WorkGroup": ex.work_group,
            }
        }

    def op_GetQueryResults(self, body: dict) -> dict:
        ex = self._execution(body)
        if ex.state != "SUCCEEDED":
            raise InvalidRequest(f"Query has not yet finished. Current state: {ex.state}")
        start = int(body.get("NextToken") or 0)
        size = min(int(body.get("MaxResults", PAGE)), PAGE)
        rows = []
        if ex.statement_type != "DDL" and start == 0 and ex.columns:
            rows.append({"Data": [{"VarCharValue": n} for n, _ in ex.columns]})
            size -= 1
        for row in ex.rows[start : start + size]:
            rows.append(
                {"Data": [format_value(v, t) for v, (_, t) in zip(row, ex.columns, strict=True)]}
            )
        result = {
            "UpdateCount": ex.update_count,
            "ResultSet": {
                "Rows": rows,
                "ResultSetMetadata": {"ColumnInfo": [_column_info(n, t) for n, t in ex.columns]},
            },
        }
        if start + size < len(ex.rows):
            result["NextToken"] = str(start + size)
        return result

    def op_StopQueryExecution(self, body: dict) -> dict:
        self._execution(body)
        return {}

    def op_GetWorkGroup(self, body: dict) -> dict:
        wg = self.twin.work_groups.get(body["WorkGroup"])
        if wg is None:
            raise InvalidRequest(f"WorkGroup {body['WorkGroup']} is not found.")
        configuration = {
            "EnforceWorkGroupConfiguration": wg.enforced,
            "PublishCloudWatchMetricsEnabled": True,
            "EngineVersion": {"SelectedEngineVersion": "Athena engine version 3"},
        }
        if wg.output_location:
            configuration["ResultConfiguration"] = {"OutputLocation": wg.output_location}
        if wg.bytes_scanned_cutoff:
            configuration["BytesScannedCutoffPerQuery"] = wg.bytes_scanned_cutoff
        return {"WorkGroup": {"Name": wg.name, "State": "ENABLED", "Configuration": configuration}}


class TwinServer:
    """The twin on 127.0.0.1 and a free port, in a thread; ``url`` is its endpoint."""

    def __init__(self, twin: AthenaTwin) -> None:
        handler = type("TwinHandler", (_Handler,), {"twin": twin})
        self.twin = twin
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> TwinServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
