"""OpenAPI for the long-poll receive, a plain async view that drf-spectacular cannot see."""

from routing.contracts import ReceiveIn

RECEIVE_PATH = "/api/v1/messages/receive/"


def add_receive_endpoint(result, generator, request, public):
    request_schema = ReceiveIn.model_json_schema()
    request_schema.pop("title", None)
    result.setdefault("paths", {})[RECEIVE_PATH] = {"post": {
        "operationId": "messages_receive",
        "summary": "The session's next messages (priority, then age); waits up to wait_seconds for one",
        "tags": ["v1"],
        "security": [{"ApiKey": []}],
        "parameters": [{"in": "header", "name": "X-Session-Token", "required": True, "schema": {"type": "string"},
                        "description": "The session_token returned when the session connected."}],
        "requestBody": {"content": {"application/json": {"schema": request_schema}}},
        "responses": {
            "200": {"description": "Messages, now delivered (or acked with auto_ack)",
                    "content": {"application/json": {"schema": {"type": "object", "properties": {
                        "messages": {"type": "array", "items": {"type": "object"}},
                        "count": {"type": "integer"}}}}}},
            "400": {"description": "validation_error"}, "401": {"description": "unauthorized"},
        },
    }}
    return result
