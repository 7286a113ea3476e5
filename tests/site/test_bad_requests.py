"""Malformed requests get the SPEC error shape on every REST path, never a stack trace or HTML."""

import pytest


def assert_error_shape(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content[:300]
    body = response.json()
    assert set(body) == {"error", "message", "details"}
    assert body["error"] == code
    assert "Traceback" not in response.content.decode()


@pytest.mark.parametrize("path", ["/api/v1/sessions/", "/api/v1/protocols/", "/api/v1/projects/",
                                  "/api/v1/negotiate/"])
def test_invalid_json_body(alpha, path):
    response = alpha.client().post(path, "{not json", content_type="application/json")
    assert_error_shape(response, 400, "validation_error")


@pytest.mark.parametrize("body", ["[]", "\"text\"", "42", "null"])
def test_body_that_is_not_an_object(alpha, body):
    response = alpha.client().post("/api/v1/sessions/", body, content_type="application/json")
    assert_error_shape(response, 400, "validation_error")


def test_form_encoded_body_is_refused(alpha):
    response = alpha.client().post("/api/v1/sessions/", {"name": "x"})
    assert_error_shape(response, 415, "validation_error")


def test_wrong_method(alpha):
    assert_error_shape(alpha.client().delete("/api/v1/sessions/"), 405, "method_not_allowed")


def test_unknown_api_path_is_json_404(alpha):
    assert_error_shape(alpha.client().get("/api/v1/nothing-here/"), 404, "not_found")


def test_oversized_body_is_refused_and_server_keeps_serving(alpha, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = alpha.client().post("/api/v1/sessions/", {"name": "x" * 4000}, format="json")
    assert_error_shape(response, 413, "payload_too_large")
    assert response.json()["details"]["limit_bytes"] == 1024
    assert alpha.client().get("/api/v1/sessions/").status_code == 200


def test_unauthenticated_schema_and_docs_are_public(db, client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for expected in ["/api/v1/projects/", "/api/v1/projects/{project_id}/keys/", "/api/v1/protocols/",
                     "/api/v1/sessions/", "/api/v1/negotiate/", "/api/v1/negotiate/matrix/",
                     "/api/v1/messages/", "/api/v1/messages/broadcast/", "/api/v1/messages/receive/",
                     "/api/v1/messages/ack/", "/api/v1/messages/{message_id}/", "/api/v1/dead-letters/",
                     "/api/v1/dead-letters/{message_id}/replay/", "/api/v1/protocols/{name}/adapters/"]:
        assert expected in paths, expected
    assert client.get("/api/docs/").status_code == 200


def test_health_probes(db, client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["database"] == "up"
