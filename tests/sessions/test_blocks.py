"""A session can block and unblock others of its project."""

from sessions_app.models import SessionBlock


def test_block_and_unblock(alpha):
    me, token = alpha.connect("me-agent")
    pest, _ = alpha.connect("pest")
    client = alpha.client(HTTP_X_SESSION_TOKEN=token)
    assert client.post("/api/v1/sessions/me/blocks/", {"session": "pest"}, format="json").status_code == 201
    assert client.get("/api/v1/sessions/me/blocks/").json()["blocked"] == [str(pest.id)]
    assert SessionBlock.objects.filter(blocker=me, blocked=pest).exists()
    assert client.delete(f"/api/v1/sessions/me/blocks/{pest.id}/").status_code == 200
    assert client.get("/api/v1/sessions/me/blocks/").json()["blocked"] == []


def test_cannot_block_self_or_unknown_or_other_projects_session(alpha, beta):
    _, token = alpha.connect("me-agent")
    outsider, _ = beta.connect("outsider")
    client = alpha.client(HTTP_X_SESSION_TOKEN=token)
    assert client.post("/api/v1/sessions/me/blocks/", {"session": "me-agent"}, format="json").status_code == 400
    assert client.post("/api/v1/sessions/me/blocks/", {"session": "ghost"}, format="json").status_code == 404
    assert client.post("/api/v1/sessions/me/blocks/", {"session": str(outsider.id)}, format="json").status_code == 404
    assert client.post("/api/v1/sessions/me/blocks/", {}, format="json").status_code == 400


def test_unblocking_someone_not_blocked_is_not_found(alpha):
    _, token = alpha.connect("me-agent")
    alpha.connect("friend")
    response = alpha.client(HTTP_X_SESSION_TOKEN=token).delete("/api/v1/sessions/me/blocks/friend/")
    assert response.status_code == 404
