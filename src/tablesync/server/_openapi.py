"""``GET /openapi.json``: an OpenAPI 3.1 description of the /tables API, built from the tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._version import __version__
from ._schema import TableState

_JSON_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": ["string", "null"]},
    "integer": {"type": ["integer", "null"], "format": "int64"},
    "number": {"type": ["number", "null"]},
    "boolean": {"type": ["boolean", "null"]},
    "datetime": {"type": ["string", "null"], "format": "date-time"},
    "json": {},
}
_ERROR = {"$ref": "#/components/schemas/Error"}


def openapi_document(states: Sequence[TableState], *, max_batch: int = 0) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``states`` (paths, parameters and schemas per table).

    With ``max_batch`` > 0 it also describes ``POST /tables/$batch``, so that fuzzing reaches it.
    """
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Error": _error_schema()}
    for state in states:
        name = state.config.name
        schemas[_schema_name(name)] = _item_schema(state)
        schemas[_schema_name(name) + "Page"] = _page_schema(name)
        paths[f"/tables/{name}"] = _collection_path(name)
        paths[f"/tables/{name}/{{id}}"] = _item_path(name)
    if max_batch > 0:
        paths["/tables/$batch"] = _batch_path([state.config.name for state in states], max_batch)
    return {
        "openapi": "3.1.0",
        "info": {"title": "tablesync /tables API", "version": __version__},
        "paths": paths,
        "components": {"schemas": schemas, "parameters": _parameters()},
    }


def _schema_name(table: str) -> str:
    return "Item_" + table


def _item_schema(state: TableState) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "id": {"type": "string", "minLength": 1, "maxLength": 255},
        "createdAt": {"type": "string", "format": "date-time", "readOnly": True},
        "updatedAt": {"type": "string", "format": "date-time", "readOnly": True},
        "version": {"type": "string"},
        "deleted": {"type": "boolean"},
    }
    properties.update((col, dict(_JSON_TYPES[kind])) for col, kind in state.kinds.items())
    dynamic = state.config.dynamic_schema
    return {"type": "object", "properties": properties, "additionalProperties": bool(dynamic)}


def _page_schema(table: str) -> dict[str, Any]:
    item = {"$ref": f"#/components/schemas/{_schema_name(table)}"}
    return {
        # anyOf: a v3 page also satisfies the loose v2 {"results","count"} shape.
        "anyOf": [
            {
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": item},
                    "count": {"type": ["integer", "null"]},
                    "nextLink": {"type": ["string", "null"]},
                },
                "required": ["items", "count", "nextLink"],
            },
            {"type": "array", "items": item},
            {
                "type": "object",
                "properties": {
                    "results": {"type": "array", "items": item},
                    "count": {"type": "integer"},
                },
            },
        ]
    }


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"status": {"type": "integer"}, "error": {"type": "string"}},
        "required": ["status", "error"],
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def _parameters() -> dict[str, Any]:
    def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "required": False,
            "schema": schema,
            "description": description,
        }

    return {
        "ApiVersionHeader": {
            "name": "ZUMO-API-VERSION",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "enum": ["2.0.0", "3.0.0"]},
            "description": "Protocol version (the query parameter of the same name wins).",
        },
        "ApiVersionQuery": query(
            "ZUMO-API-VERSION", {"type": "string", "enum": ["2.0.0", "3.0.0"]}, "Protocol version."
        ),
        "Filter": query("$filter", {"type": "string"}, "OData filter (v2 or v3 dialect)."),
        "OrderBy": query("$orderby", {"type": "string"}, "Comma-separated fields, asc/desc."),
        "Skip": query("$skip", {"type": "integer", "minimum": 0}, "Rows to skip."),
        "Top": query("$top", {"type": "integer", "minimum": 0}, "Most rows to return."),
        "Select": query("$select", {"type": "string"}, "Comma-separated fields."),
        "Count": query("$count", {"type": "boolean"}, "v3: include the filtered total."),
        "InlineCount": query(
            "$inlinecount", {"type": "string", "enum": ["allpages", "none"]}, "v2 count."
        ),
        "IncludeDeleted": query(
            "__includedeleted", {"type": "boolean"}, "Include soft-deleted rows."
        ),
        "Id": {
            "name": "id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        },
        "IfMatch": {
            "name": "If-Match",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
        },
        "IdempotencyKey": {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 255},
        },
    }


def _responses(table: str, *codes: str) -> dict[str, Any]:
    item = {
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{_schema_name(table)}"}}
        }
    }
    error = {"content": {"application/json": {"schema": _ERROR}}}
    known = {
        "200": {"description": "The item", **item},
        "201": {"description": "Created", **item},
        "204": {"description": "Deleted"},
        "304": {"description": "Not modified"},
        "409": {"description": "Conflict: the server's item", **item},
        "412": {"description": "Precondition failed: the server's item", **item},
    }
    responses = {code: known[code] for code in codes}
    for code in ("400", "404", "405", "410", "413", "415", "422", "503"):
        responses[code] = {"description": "Error", **error}
    return responses


def _body(table: str) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{_schema_name(table)}"}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _collection_path(table: str) -> dict[str, Any]:
    page = {"$ref": f"#/components/schemas/{_schema_name(table)}Page"}
    query_params = [
        "ApiVersionHeader",
        "ApiVersionQuery",
        "Filter",
        "OrderBy",
        "Skip",
        "Top",
        "Select",
        "Count",
        "InlineCount",
        "IncludeDeleted",
    ]
    return {
        "get": {
            "summary": f"Query {table}",
            "parameters": [_ref(name) for name in query_params],
            "responses": {
                "200": {
                    "description": "A page of items",
                    "content": {"application/json": {"schema": page}},
                },
                "400": {
                    "description": "Error",
                    "content": {"application/json": {"schema": _ERROR}},
                },
            },
        },
        "post": {
            "summary": f"Insert into {table}",
            "parameters": [_ref("ApiVersionHeader"), _ref("IdempotencyKey")],
            "requestBody": _body(table),
            "responses": _responses(table, "201", "409"),
        },
    }


def _item_path(table: str) -> dict[str, Any]:
    common = [_ref("ApiVersionHeader"), _ref("Id")]
    writes = [*common, _ref("IfMatch"), _ref("IdempotencyKey")]
    return {
        "get": {
            "summary": "Read one item",
            "parameters": [*common, _ref("IncludeDeleted")],
            "responses": _responses(table, "200", "304", "412"),
        },
        "patch": {
            "summary": "Merge changes (v2, v3)",
            "parameters": writes,
            "requestBody": _body(table),
            "responses": _responses(table, "200", "409", "412"),
        },
        "put": {
            "summary": "Replace (v3)",
            "parameters": writes,
            "requestBody": _body(table),
            "responses": _responses(table, "200", "409", "412"),
        },
        "delete": {
            "summary": "Delete",
            "parameters": writes,
            "responses": _responses(table, "204", "409", "412"),
        },
        "post": {
            "summary": "Undelete (v2)",
            "parameters": writes,
            "responses": _responses(table, "201", "412"),
        },
    }


def _batch_path(tables: list[str], max_batch: int) -> dict[str, Any]:
    # The extension of docs/protocol-extensions.md ("Batch push"): each operation is the single
    # request it stands for; the answer holds one {status, headers, body} per operation.
    operation = {
        "type": "object",
        "required": ["method", "table"],
        "properties": {
            "method": {"type": "string", "enum": ["POST", "PATCH", "PUT", "DELETE"]},
            "table": {"type": "string", **({"enum": tables} if tables else {})},
            "id": {"type": "string", "maxLength": 255},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "body": {"type": "object"},
        },
    }
    body = {
        "type": "object",
        "required": ["operations"],
        "properties": {
            "operations": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_batch,
                "items": operation,
            }
        },
    }
    result = {
        "type": "object",
        "required": ["status", "headers"],
        "properties": {
            "status": {"type": "integer"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "body": {},
        },
    }
    answer = {"type": "object", "properties": {"results": {"type": "array", "items": result}}}
    error = {"description": "Error", "content": {"application/json": {"schema": _ERROR}}}
    return {
        "post": {
            "summary": "Apply queued writes in order, one result each (tablesync extension)",
            "parameters": [_ref("ApiVersionHeader")],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {
                "200": {
                    "description": "One result per operation, in order",
                    "content": {"application/json": {"schema": answer}},
                },
                **{code: error for code in ("400", "413", "415", "503")},
            },
        }
    }
