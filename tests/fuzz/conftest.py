"""A live broker per fuzz module (the MCP tests' server: daphne on the run's stack, keys made by the
management commands), real ids of project alpha for the fuzzers to aim at, and a canary client of
project beta that must keep getting answers while they run.

How many examples each fuzzer tries: BROKER_FUZZ_EXAMPLES (a small number by default, so the fuzz
part of the suite takes a minute or two per stack; raise it to fuzz harder).
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from devtools.fuzzing import Canary, server_error
from devtools.live import daphne_command
from tests.mcp.conftest import LiveBroker as McpBroker
from tests.mcp.conftest import serve_live_broker
from tests.websocket.conftest import LiveBroker as WsBroker

FUZZ_EXAMPLES = int(os.environ.get("BROKER_FUZZ_EXAMPLES", "0") or 0)
# The canary's liveness bound: generous, for a loaded 2-core machine (the benchmark holds it to 1 s).
CANARY_BOUND_SECONDS = 10


def fuzz_settings(default_examples: int) -> settings:
    """Hypothesis settings for a fuzzer against a live server: no deadline (the server's pace is not
    the input's fault), no health checks about slow generation, a fixed derandomized run by default."""
    return settings(max_examples=FUZZ_EXAMPLES or default_examples, deadline=None, derandomize=not FUZZ_EXAMPLES,
                    suppress_health_check=list(HealthCheck), database=None)


@dataclass
class FuzzBroker:
    """The live server, its keys by role, real ids of project alpha, and the canary of project beta."""

    mcp: McpBroker
    canary: Canary
    sessions: list[dict[str, str]] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    protocol: dict[str, str] = field(default_factory=dict)
    key_ids: list[str] = field(default_factory=list)
    foreign: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def http_url(self) -> str:
        return self.mcp.process.http_url

    @property
    def ws(self) -> WsBroker:
        """The WebSocket tests' helpers on the same server."""
        return WsBroker(self.mcp.process, self.mcp.admin_key, self.mcp.agent_key, self.mcp.other_project_key)

    def key(self, role: str) -> str:
        return {"agent": self.mcp.agent_key, "admin": self.mcp.admin_key, "operator": self.mcp.operator_key}[role]

    def headers(self, role: str) -> dict[str, str]:
        """An operator acts in project alpha with X-Project-ID, as operators do."""
        headers = {"Authorization": f"Bearer {self.key(role)}"}
        if role == "operator":
            headers["X-Project-ID"] = "alpha"
        return headers

    def rest(self, role: str = "agent") -> httpx.Client:
        return httpx.Client(base_url=self.http_url, headers=self.headers(role), timeout=60)

    def known(self) -> dict[str, st.SearchStrategy]:
        """Real values by argument name, for generated input to get past lookups into the logic
        (and, with the foreign ones, to knock on another project's door)."""
        session_refs = [s["session_id"] for s in self.sessions] + [s["name"] for s in self.sessions]
        return {
            "session_token": st.sampled_from([s["token"] for s in self.sessions]),
            "session_id": st.sampled_from(session_refs),
            "recipient_id": st.sampled_from([*session_refs, self.foreign["session_id"]]),
            "target_session_id": st.sampled_from([*session_refs, self.foreign["session_id"]]),
            "message_id": st.sampled_from([*self.message_ids, self.foreign["message_id"]]),
            "message_ids": st.lists(st.sampled_from([*self.message_ids, self.foreign["message_id"]]), min_size=1,
                                    max_size=3),
            "protocol_name": st.sampled_from([self.protocol["name"], self.foreign["protocol"]]),
            "protocol_version": st.just(self.protocol["version"]),
            "name": st.sampled_from([self.protocol["name"], *(s["name"] for s in self.sessions)]),
            "project_id": st.sampled_from(["alpha", "beta", "nope"]),
            "key_id": st.sampled_from(self.key_ids),
        }

    def restore(self) -> None:
        """Undo what a fuzzed call may have changed in alpha for the calls after it: its settings,
        its active flag, its sessions (a real token may disconnect one)."""
        with self.rest("operator") as operator:
            operator.post("/api/v1/projects/alpha/activate/")
            operator.patch("/api/v1/projects/alpha/", json=self.config)
        with self.rest() as rest:
            for known in self.sessions:
                rest.post("/api/v1/sessions/", json={"name": known["name"], "session_token": known["token"]})


def _connect(rest: httpx.Client, name: str) -> dict[str, str]:
    response = rest.post("/api/v1/sessions/", json={"name": name, "capabilities": {
        "supported_protocols": {"fuzz_proto": ["1.0.0"]}, "supported_features": ["streaming"]}})
    assert response.status_code == 201, response.text
    body = response.json()
    return {"session_id": body["session_id"], "name": name, "token": body["session_token"]}


def _send(rest: httpx.Client, sender: dict[str, str], recipient: dict[str, str]) -> str:
    response = rest.post("/api/v1/messages/", headers={"X-Session-Token": sender["token"]},
                         json={"recipient_id": recipient["session_id"], "payload": {"file": "a.py"}})
    assert response.status_code == 201, response.text
    return response.json()["message_id"]


def _seed(broker: FuzzBroker) -> None:
    """Sessions, a protocol and messages in alpha, and the same in beta to aim at from alpha."""
    protocol = {"name": "fuzz_proto", "version": "1.0.0", "capabilities": ["point_to_point"], "tags": ["fuzz"],
                "schema": {"type": "object", "properties": {"file": {"type": "string"}}}}
    with broker.rest("agent") as rest:
        assert rest.post("/api/v1/protocols/", json=protocol).status_code == 201
        broker.protocol = {"name": "fuzz_proto", "version": "1.0.0"}
        broker.sessions = [_connect(rest, "fuzz-a"), _connect(rest, "fuzz-b")]
        broker.message_ids = [_send(rest, broker.sessions[0], broker.sessions[1]) for _ in range(3)]
    with broker.rest("admin") as admin:
        # Keys only the fuzzers use: a fuzzed revoke or rotate may end them, never the keys it calls with.
        for _ in range(2):
            created = admin.post("/api/v1/projects/alpha/keys/", json={"role": "agent", "label": "fuzz victim"})
            assert created.status_code == 201, created.text
            broker.key_ids.append(created.json()["key_id"])
        broker.config = admin.get("/api/v1/projects/alpha/", params={"include_config": "true"}).json()["config"]
    beta = httpx.Client(base_url=broker.http_url, headers={"Authorization": f"Bearer {broker.mcp.other_project_key}"},
                        timeout=60)
    with beta:
        assert beta.post("/api/v1/protocols/", json={**protocol, "name": "beta_proto"}).status_code == 201
        first, second = _connect(beta, "beta-a"), _connect(beta, "beta-b")
        broker.foreign = {"session_id": first["session_id"], "message_id": _send(beta, first, second),
                          "protocol": "beta_proto"}


@pytest.fixture(scope="module")
def fuzz_broker(tmp_path_factory) -> Iterator[FuzzBroker]:
    for mcp in serve_live_broker(tmp_path_factory, daphne_command):
        canary = Canary(mcp.process.http_url, mcp.process.ws_url, mcp.other_project_key)
        broker = FuzzBroker(mcp, canary)
        _seed(broker)
        canary.start()
        try:
            yield broker
        finally:
            canary.stop()
        assert_canary_lived(canary)


def assert_canary_lived(canary: Canary) -> None:
    """Every canary call answered, each within the generous bound; its worst latency is printed."""
    print(f"canary: {canary.summary()}")
    assert canary.calls > 0, "the canary never got to ask"
    assert not canary.failures, canary.summary()
    assert canary.worst < CANARY_BOUND_SECONDS, canary.summary()


def assert_answer_sound(what: Any, status: int | None, text: str) -> None:
    """The pass condition for one answer: no 5xx, no internal_error, no traceback text."""
    reason = server_error(status, text)
    assert not reason, f"server error ({reason}) for {what!r}: {text[:500]}"
