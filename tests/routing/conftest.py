"""Helpers for routing tests: act as a session over REST."""

from dataclasses import dataclass

import pytest

from tests.conftest import Tenant


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
