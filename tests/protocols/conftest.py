"""Helpers for the protocol tests."""

CHAT_SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string", "maxLength": 200}, "room": {"type": "string"}},
    "required": ["text"],
}


def register(client, name: str = "chat", version: str = "1.0.0", schema: dict | None = None, **extra):
    body = {"name": name, "version": version, "schema": CHAT_SCHEMA if schema is None else schema, **extra}
    return client.post("/api/v1/protocols/", body, format="json")


def assert_error(response, status: int, code: str) -> dict:
    """The SPEC error shape, with the expected status and code; returns the details."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "message", "details"}, body
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body["details"]
