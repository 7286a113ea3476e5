"""JSON nested deeper than BROKER_MAX_JSON_DEPTH (64) is a validation_error on REST and WebSocket, never a 500."""

import json

import pytest

LIMIT = 64


def nested(depth: int) -> dict:
    """An object `depth` levels deep, counting itself: {"a": {"a": ... {}}}."""
    return json.loads('{"a":' * (depth - 1) + "{}" + "}" * (depth - 1))


def deep_text(depth: int) -> str:
    """JSON text `depth` arrays deep: deeper than Python's json can even parse, for large depths."""
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [LIMIT + 1, 5_000, 100_000])
async def test_a_deep_frame_is_a_validation_error_and_the_socket_stays(live_broker, depth):
    async with live_broker.connect() as client:
        deep = '{"type": "send", "recipient_id": "x", "payload": {"a": ' + deep_text(depth) + "}}"
        await client.connection.send(deep)
        refused = await client.next("error")
        assert (refused["error"], refused["details"]["limit"]) == ("validation_error", LIMIT)
        assert (await client.request({"type": "heartbeat"}))["type"] == "result"


async def test_a_payload_within_the_depth_is_delivered(live_broker):
    async with live_broker.connect() as client:
        payload = {"deep": nested(LIMIT - 3)}  # the frame and payload envelope take two levels, the payload one
        sent = await client.request({"type": "send", "recipient_id": client.session_id, "payload": payload})
        assert sent["type"] == "result", sent
        [message] = await client.messages(1)
        assert message["payload"] == payload


@pytest.mark.parametrize("depth", [LIMIT + 1, 5_000, 100_000])
def test_a_deep_rest_body_is_a_validation_error(live_broker, depth):
    with live_broker.rest() as rest:
        connected = rest.post("/api/v1/sessions/", json={"name": f"deep-{depth}"})
        assert connected.status_code == 201, connected.text
        token = connected.json()["session_token"]
    body = '{"recipient_id": "x", "payload": {"a": ' + deep_text(depth) + "}}"
    with live_broker.rest(session_token=token) as rest:
        headers = {"Content-Type": "application/json"}
        for path in ("/api/v1/messages/", "/api/v1/messages/receive/"):
            refused = rest.post(path, content=body, headers=headers)
            assert refused.status_code == 400, (path, refused.text)
            assert refused.json()["error"] == "validation_error"
            assert refused.json()["details"]["limit"] == LIMIT
        assert rest.post("/api/v1/sessions/me/heartbeat/").status_code == 200


def test_nan_is_not_json_on_rest(live_broker):
    with live_broker.rest() as rest:
        refused = rest.post("/api/v1/sessions/", content='{"name": NaN}', headers={"Content-Type": "application/json"})
        assert (refused.status_code, refused.json()["error"]) == (400, "validation_error")
