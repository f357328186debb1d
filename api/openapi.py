"""The OpenAPI 3.0 document, generated from the routing table (api.routes)."""

from __future__ import annotations

from api.params import CHANNELS, STATUSES
from api.routes import ROUTES

_INT = {"type": "integer"}
_ID = {"type": "integer", "format": "int64", "minimum": 1}
_COUNT = {"type": "integer", "minimum": 0}
_MONEY = {"type": "number", "description": "Rounded to 2 decimals."}
_LITRES = {"type": "number", "description": "Litres, rounded to 3 decimals."}
_STR = {"type": "string"}
_DATE = {"type": "string", "format": "date"}
_CHANNEL = {"type": "string", "enum": list(CHANNELS)}
_STATUS = {"type": "string", "enum": list(STATUSES)}


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
    "TopProduct": _obj(
        {"product_id": _ID, "product_description": _STR, "units": _COUNT}, nullable=True
    ),
    "Client": _obj(
        {
            "client_id": _ID,
            "client_name": _STR,
            "orders": _COUNT,
            "units": _COUNT,
            "liters": _LITRES,
            "total_spend": _MONEY,
            "top_product": {"$ref": "#/components/schemas/TopProduct"},
        }
    ),
    "Order": _obj(
        {
            "order_id": _ID,
            "client_id": _ID,
            "product_id": _ID,
            "product_description": _STR,
            "units": _INT,
            "unit_price": _MONEY,
            "total_amount": _MONEY,
            "liters": _LITRES,
            "channel": _CHANNEL,
            "status": _STATUS,
            "pa_date": _DATE,
        }
    ),
    "Product": _obj(
        {
            "product_id": _ID,
            "product_description": _STR,
            "orders": _COUNT,
            "units": _COUNT,
            "liters": _LITRES,
            "revenue": _MONEY,
        }
    ),
    "Channel": _obj(
        {
            "channel": _CHANNEL,
            "orders": _COUNT,
            "units": _COUNT,
            "liters": _LITRES,
            "revenue": _MONEY,
        }
    ),
    "ProductChannel": _obj(
        {
            "product_id": _ID,
            "product_description": _STR,
            "channel": _CHANNEL,
            "orders": _COUNT,
            "units": _COUNT,
            "liters": _LITRES,
            "revenue": _MONEY,
        }
    ),
    "Status": _obj({"status": _STATUS, "orders": _COUNT, "units": _COUNT, "revenue": _MONEY}),
    "Daily": _obj(
        {"pa_date": _DATE, "orders": _COUNT, "units": _COUNT, "liters": _LITRES, "revenue": _MONEY}
    ),
    "ClientPage": _page("Client"),
    "OrderPage": _page("Order"),
    "ProductList": _list("Product"),
    "ChannelList": _list("Channel"),
    "ProductChannelList": _list("ProductChannel"),
    "StatusList": _list("Status"),
    "DailyList": _list("Daily"),
}


def _error(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def build_document(version: str = "1.0.0") -> dict:
    paths: dict[str, dict] = {}
    for route in ROUTES:
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
        if route.handler is not None:
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
            "schemas": SCHEMAS,
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
        },
    }
