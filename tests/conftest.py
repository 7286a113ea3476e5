"""Shared fixtures. State is set up through services, never raw ORM."""

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from projects.models import ApiKey, Project
from projects.services import api_key_create, project_create
from routing.crossing import kept_links_forgotten
from routing.lifecycle import session_connect


@pytest.fixture(autouse=True)
def _fresh_link_memory():
    """What a process keeps of links (routing.crossing) does not outlive the test whose database held them."""
    kept_links_forgotten()


@dataclass
class Tenant:
    project: Project
    admin_key: str
    agent_key: str

    def client(self, key: str | None = None, **headers: str) -> APIClient:
        return api_client(key or self.agent_key, **headers)

    def admin(self) -> APIClient:
        return api_client(self.admin_key)

    def connect(self, name: str | None = None, protocols: dict | None = None, features: list | None = None):
        """A connected session of this project: (session, token)."""
        caps = {"supported_protocols": protocols or {}, "supported_features": features or []}
        connected = session_connect(self.project, name=name, capabilities=caps)
        return connected.session, connected.token


def api_client(key: str | None, **headers: str) -> APIClient:
    client = APIClient()
    if key:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}", **headers)
    elif headers:
        client.credentials(**headers)
    return client


@pytest.fixture
def make_tenant(db):
    def make(project_id: str, **fields) -> Tenant:
        project, _, admin_raw = project_create(project_id=project_id, name=fields.pop("name", project_id.title()),
                                               **fields)
        _, agent_raw = api_key_create(project, role=ApiKey.Role.AGENT, label="test agent")
        return Tenant(project, admin_raw, agent_raw)

    return make


@pytest.fixture
def alpha(make_tenant) -> Tenant:
    return make_tenant("alpha")


@pytest.fixture
def beta(make_tenant) -> Tenant:
    return make_tenant("beta")


@pytest.fixture
def operator_key(make_tenant) -> str:
    ops = make_tenant("ops")
    _, raw = api_key_create(ops.project, role=ApiKey.Role.OPERATOR, label="test operator")
    return raw

@dataclass
class Agent:
    tenant: Tenant
    session: object
    token: str

    @property
    def client(self):
        return self.tenant.client(HTTP_X_SESSION_TOKEN=self.token)

    def send(self, recipient, payload=None, **extra):
        body = {"recipient_id": str(recipient), "payload": {"text": "hi"} if payload is None else payload, **extra}
        return self.client.post("/api/v1/messages/", body, format="json")

    def broadcast(self, payload=None, **extra):
        body = {"payload": {"text": "all"} if payload is None else payload, **extra}
        return self.client.post("/api/v1/messages/broadcast/", body, format="json")

    def receive(self, **options):
        response = self.client.post("/api/v1/messages/receive/", options, format="json")
        assert response.status_code == 200, response.content
        return response.json()["messages"]

    def ack(self, ids):
        return self.client.post("/api/v1/messages/ack/", {"message_ids": [str(i) for i in ids]}, format="json")


@pytest.fixture
def agent():
    def make(tenant: Tenant, name: str, protocols: dict | None = None, features: list | None = None) -> Agent:
        session, token = tenant.connect(name, protocols=protocols, features=features)
        return Agent(tenant, session, token)

    return make
