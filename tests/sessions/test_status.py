"""set_status over REST: kept on the session, listed, told to the project's live sessions."""

import pytest

from routing.events import project_group
from routing.hub import PRESENCE_EVENT
from tests.conftest import api_client
from tests.routing.test_events import Listener


@pytest.mark.django_db(transaction=True)  # events go out on commit
def test_rest_status_is_listed_and_told_to_the_project(alpha):
    _, token = alpha.connect("worker")
    listener = Listener(project_group("alpha"))
    client = api_client(alpha.agent_key, HTTP_X_SESSION_TOKEN=token)
    said = client.post("/api/v1/sessions/me/status/", {"summary": "writing tests", "state": "working"}, format="json")
    assert said.status_code == 200, said.content
    assert said.json()["activity"]["summary"] == "writing tests"
    [worker] = [s for s in client.get("/api/v1/sessions/").json()["sessions"] if s["name"] == "worker"]
    assert worker["activity"]["state"] == "working"
    [event] = [e for e in listener.events() if e["type"] == PRESENCE_EVENT and e["event"] == "session_status"]
    assert event["name"] == "worker" and event["activity"]["summary"] == "writing tests"


def test_rest_status_needs_a_session_and_a_known_state(alpha):
    _, token = alpha.connect("worker")
    client = api_client(alpha.agent_key, HTTP_X_SESSION_TOKEN=token)
    bad = client.post("/api/v1/sessions/me/status/", {"summary": "x", "state": "asleep"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"] == "validation_error"
    nobody = api_client(alpha.agent_key).post("/api/v1/sessions/me/status/", {"summary": "x"}, format="json")
    assert nobody.status_code in (401, 403), nobody.content
