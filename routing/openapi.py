"""OpenAPI for the session's long-poll views (routing.api.session_long_poll), which drf-spectacular cannot see."""

from typing import Any

from pydantic import BaseModel

from routing.contracts import ReceiveIn, RequestReplyIn

LONG_POLLS: dict[str, tuple[str, str, type[BaseModel], str, dict[str, Any]]] = {
    "/api/v1/messages/receive/": (
        "messages_receive", "The session's next messages (priority, then age); waits up to wait_seconds for one",
        ReceiveIn, "Messages, now delivered (or acked with auto_ack)",
        {"messages": {"type": "array", "items": {"type": "object"}}, "count": {"type": "integer"}}),
    "/api/v1/messages/request-reply/": (
        "message_request_reply", "Send, then wait up to timeout_seconds for the reply (reply_to = its message_id)",
        RequestReplyIn, "status replied (with the reply, acked) or timeout; the request's receipt either way",
        {"status": {"type": "string", "enum": ["replied", "timeout"]}, "request": {"type": "object"},
         "reply": {"type": "object"}, "message_id": {"type": "string"}}),
}


def add_long_poll_endpoints(result, generator, request, public):
    for path, (operation, summary, contract, answer, properties) in LONG_POLLS.items():
        request_schema = contract.model_json_schema()
        request_schema.pop("title", None)
        result.setdefault("paths", {})[path] = {"post": {
            "operationId": operation,
            "summary": summary,
            "tags": ["v1"],
            "security": [{"ApiKey": []}],
            "parameters": [{"in": "header", "name": "X-Session-Token", "required": True,
                            "schema": {"type": "string"},
                            "description": "The session_token returned when the session connected."}],
            "requestBody": {"content": {"application/json": {"schema": request_schema}}},
            "responses": {
                "200": {"description": answer, "content": {"application/json": {"schema": {
                    "type": "object", "properties": properties}}}},
                "400": {"description": "validation_error"}, "401": {"description": "unauthorized"},
            },
        }}
    return result
