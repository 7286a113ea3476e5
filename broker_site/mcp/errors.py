"""The MCP face's one mapper from errors to the SPEC shape {error, message, details}.

Inside a tool call a failure is a tool result with isError set, carrying the shape both as
JSON text (what most agents read) and as structuredContent. A failed resource read or
subscription has no result to carry it, so it is a JSON-RPC error whose message is ours and
whose `data` is the shape. Before MCP handling (a bad key, a bad Host, an oversized body) it
is a plain HTTP JSON response with the REST status.
"""

import logging
from typing import Any

from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, CallToolResult, TextContent

from broker_site.errors import BrokerError, http_headers
from broker_site.jsoncodec import json_text

log = logging.getLogger("broker.mcp")


def as_broker_error(exc: Exception, tool: str) -> BrokerError:
    if isinstance(exc, BrokerError):
        return exc
    # Anything else is a bug: log it with its traceback, answer without one.
    log.exception("unhandled error in MCP handler %s", tool)
    return BrokerError()


def tool_error(exc: Exception, tool: str) -> CallToolResult:
    body = as_broker_error(exc, tool).as_dict()
    return CallToolResult(content=[TextContent(type="text", text=_json(body))], structured_content=body, is_error=True)


def tool_result(data: dict[str, Any]) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=_json(data))], structured_content=data)


def request_error(exc: Exception, what: str) -> MCPError:
    """A JSON-RPC error for a failed request other than a tool call: the caller's mistakes are
    INVALID_PARAMS (there is no closer JSON-RPC code for "not yours" or "not found"), ours INTERNAL_ERROR."""
    error = as_broker_error(exc, what)
    code = INVALID_PARAMS if error.status < 500 else INTERNAL_ERROR
    return MCPError(code=code, message=error.message, data=error.as_dict())


def http_error_response(exc: BrokerError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(status, headers, body) for an error answered before MCP handling, as REST answers it."""
    headers = [(b"content-type", b"application/json")]
    headers += [(name.lower().encode(), value.encode()) for name, value in http_headers(exc).items()]
    return exc.status, headers, _json(exc.as_dict()).encode()


def _json(data: Any) -> str:
    return json_text(data, default=str)
