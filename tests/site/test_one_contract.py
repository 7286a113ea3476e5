"""One contract per operation: the MCP tool, the REST body (in the OpenAPI schema) and the WebSocket frame
of an operation take the same fields, with the same bounds, because they are the same model."""

import pytest
from drf_spectacular.generators import SchemaGenerator

from broker_site.mcp import tools  # noqa: F401  (registers the tools)
from broker_site.mcp.registry import input_schema, registry
from routing.frames import FRAMES

# operation: (MCP tool, REST operationId, WebSocket frame)
SHARED = {
    "send": ("send_message", "message_send", "send"),
    "broadcast": ("broadcast_message", "message_broadcast", "broadcast"),
    "receive": ("receive_messages", "messages_receive", None),
    "ack": ("ack_messages", "messages_ack", "ack"),
    "connect": ("connect_session", "session_connect", "hello"),
}
# What each face adds to address the call: the MCP session token, the frame's envelope and the hello's key.
FACE_ONLY = {"session_token", "type", "request_id", "key", "project_id", "presence"}


@pytest.fixture(scope="module")
def openapi() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def rest_body(openapi: dict, operation_id: str) -> dict:
    for methods in openapi["paths"].values():
        for operation in methods.values():
            if operation.get("operationId") == operation_id:
                schema = operation["requestBody"]["content"]["application/json"]["schema"]
                if "$ref" in schema:
                    schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
                return schema
    raise AssertionError(f"no {operation_id} in the OpenAPI schema")


def fields(schema: dict, components: dict | None = None) -> dict:
    """Each property's bounds and choices, with what only documents it (titles, descriptions) left out.

    `components`: where the OpenAPI schema keeps what its properties refer to (drf-spectacular
    moves every enum there).
    """
    keep = ("type", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "enum", "default")

    def resolved(arm: dict) -> dict:
        if "$ref" in arm:
            return components[arm["$ref"].rsplit("/", 1)[1]]
        if "allOf" in arm and len(arm["allOf"]) == 1:
            return {**resolved(arm["allOf"][0]), **{k: v for k, v in arm.items() if k != "allOf"}}
        return arm

    def bounds(prop: dict) -> dict:
        arms = [resolved(a) for a in prop.get("anyOf", [prop]) if a.get("type") != "null"]
        arms = [a for a in arms if a.get("type") != "null"]
        found = {k: v for arm in arms for k, v in arm.items() if k in keep} | (
            {"default": prop["default"]} if "default" in prop else {})
        # A default that is what leaving the field out means (null, false, "") is not stated by every face
        # (the MCP schemas drop it to spare the agent's context: broker_site.mcp.registry._compact).
        if found.get("default", None) is None or found["default"] is False or found["default"] == "":
            found.pop("default", None)
        return found

    return {name: bounds(prop) for name, prop in schema["properties"].items() if name not in FACE_ONLY}


@pytest.mark.parametrize("operation", sorted(SHARED))
def test_every_face_of_an_operation_takes_the_same_fields_with_the_same_bounds(operation, openapi):
    tool, operation_id, frame = SHARED[operation]
    [spec] = [s for s in registry if s.name == tool]
    mcp = fields(input_schema(spec.args))
    rest = fields(rest_body(openapi, operation_id), openapi["components"]["schemas"])
    assert mcp == rest
    if frame is not None:
        assert fields(FRAMES[frame].model_json_schema()) == mcp


def test_a_broadcast_takes_every_header_a_send_takes(openapi):
    components = openapi["components"]["schemas"]
    send = fields(rest_body(openapi, "message_send"), components)
    broadcast = fields(rest_body(openapi, "message_broadcast"), components)
    # A broadcast stays in the sender's project: only a 1:1 send names a recipient, in it or across a link.
    assert set(send) - {"recipient_id", "target_project_id"} <= set(broadcast)
