"""The OpenAPI 3.0 document, generated from the routing table (api.routes), whose data
routes and item schemas come from the served marts' declarations (api/declarations.py)."""

from __future__ import annotations

from api.declarations import Column, ServedMart
from api.realtime import SCHEMA as REALTIME_SCHEMA
from api.routes import Router, response_schema

_ID = {"type": "integer", "format": "int64", "minimum": 1}
_STR = {"type": "string"}


def _obj(props: dict, nullable: bool = False) -> dict:
    out = {
        "type": "object",
        "required": list(props),
        "properties": props,
        "additionalProperties": False,
    }
    if nullable:
        out["nullable"] = True
    return out


def _list(item: str) -> dict:
    return _obj({"items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}}})


def _page(item: str) -> dict:
    return _obj(
        {
            "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
            "next_cursor": {"type": "string", "nullable": True},
        }
    )


SCHEMAS: dict[str, dict] = {
    "Error": _obj(
        {"error": _obj({"code": _STR, "message": _STR})},
    ),
    "Health": {
        "type": "object",
        "required": ["status", "data_as_of"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "data_as_of": {
                "type": "string",
                "format": "date-time",
                "nullable": True,
                "description": "Timestamp (UTC, ending in Z) of the latest landed file.",
            },
        },
        "additionalProperties": False,
    },
    "OpenApi": {"type": "object"},
    "RealtimeSummary": REALTIME_SCHEMA,
}


def _error(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def column_schema(col: Column) -> dict:
    """A served column's JSON schema, from its data_type, tests and description."""
    if col.kind == "int":
        out = dict(_ID) if col.name.endswith("_id") else {"type": "integer"}
    elif col.kind == "decimal":
        out = {"type": "number"}
    elif col.kind == "date":
        out = {"type": "string", "format": "date"}
    elif col.kind == "timestamp":
        out = {"type": "string", "format": "date-time"}
    elif col.json_array:
        out = {"type": "array", "items": {"type": "string"}}
    else:
        out = {"type": "string"}
    if col.values:
        out["enum"] = list(col.values)
    words = [col.description] if col.description else []
    if col.kind == "decimal":
        words.append(f"Rounded to {col.scale} decimals.")
    if words:
        out["description"] = " ".join(words)
    if not col.not_null:
        out["nullable"] = True
    return out


def mart_schemas(mart: ServedMart) -> dict[str, dict]:
    """The item schema of a served mart, plus the list/page wrappers its routes answer."""
    nested = {col for fields in mart.nest.values() for col in fields.values()}
    props: dict[str, dict] = {}
    for col in mart.columns:
        if col.name not in nested:
            props[col.key] = column_schema(col)
            continue
        for obj, fields in mart.nest.items():
            if col.name in fields.values() and obj not in props:
                inner = {f: column_schema(mart.column(c)) for f, c in fields.items()}
                for schema in inner.values():
                    schema.pop("nullable", None)
                props[obj] = _obj(inner, nullable=True)
    out = {mart.schema: _obj(props)}
    if mart.description:
        out[mart.schema]["description"] = mart.description
    for route in mart.routes:
        name = response_schema(mart, route)
        if name != mart.schema:
            out[name] = _page(mart.schema) if route.paged else _list(mart.schema)
    return out


def build_document(router: Router, version: str = "1.0.0") -> dict:
    schemas = dict(SCHEMAS)
    for mart in router.marts:
        schemas.update(mart_schemas(mart))
    paths: dict[str, dict] = {}
    for route in router.endpoints:
        responses: dict[str, dict] = {
            "200": {
                "description": "OK",
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{route.response}"}
                    }
                },
            },
            "405": _error("Method not allowed (only GET and HEAD)."),
        }
        parameters = []
        for p in route.path_params:
            parameters.append(
                {
                    "name": p.name,
                    "in": "path",
                    "required": True,
                    "description": p.description,
                    "schema": p.schema(),
                }
            )
        for p in route.query:
            parameters.append(
                {
                    "name": p.name,
                    "in": "query",
                    "required": False,
                    "description": p.description,
                    "schema": p.schema(),
                }
            )
        if route.name == "realtime_summary":
            responses["400"] = _error("An impossible date or an unknown parameter.")
            responses["503"] = _error("The real-time store cannot be read.")
        if route.route is not None:
            responses["400"] = _error("A malformed or unknown parameter, or a bad cursor.")
            responses["503"] = _error("No complete build of the marts is available yet.")
            responses["504"] = _error("The query took too long (Athena).")
        if route.auth:
            responses["403"] = _error("Missing or wrong x-api-key.")
        if route.not_found:
            responses["404"] = _error("No such id.")
        if route.name == "health":
            responses["503"] = {
                "description": "No build available yet",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}
                },
            }
        op = {
            "operationId": route.name,
            "summary": route.summary,
            "parameters": parameters,
            "responses": responses,
        }
        if not route.auth:
            op["security"] = []
        paths[route.path] = {"get": op}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Duff analytics API",
            "version": version,
            "description": (
                "Duff Beer sales marts. Data routes need the `x-api-key` header. Errors are "
                '`{"error": {"code", "message"}}`. Filter values are case-insensitive. '
                "Unknown query parameters are refused with 400."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
        },
    }
