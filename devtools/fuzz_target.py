"""The target of the fuzzers (tests/fuzz and bench/fuzz.py): a live broker's URLs and keys by role,
real ids of project alpha (and of beta, another project) for generated input to aim at, and the
calls that put one generated input to the server on the REST and MCP faces.
"""

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx2
from hypothesis import strategies as st
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from devtools.fuzzing import JSONRPC_INTERNAL_ERROR, clamp_waits, mcp_answer_text, nested_text


@dataclass
class FuzzTarget:
    """A live broker to fuzz: its keys by role (project alpha's agent and admin, an operator acting in
    alpha, and beta's admin for the canary), and real ids of alpha and of beta to aim at."""

    http_url: str
    ws_url: str
    keys: dict[str, str]
    live: Any = None  # the test fixture's server object, for tests that drive it their own way
    sessions: list[dict[str, str]] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    protocol: dict[str, str] = field(default_factory=dict)
    key_ids: list[str] = field(default_factory=list)
    foreign: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    link_ids: list[str] = field(default_factory=list)

    def key(self, role: str) -> str:
        return self.keys[role]

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
            "recipient_id": st.sampled_from([*session_refs, self.foreign["session_id"],
                                             f"beta/{self.foreign['session_id']}", "beta/beta-a"]),
            "target_session_id": st.sampled_from([*session_refs, self.foreign["session_id"]]),
            "message_id": st.sampled_from([*self.message_ids, self.foreign["message_id"]]),
            "message_ids": st.lists(st.sampled_from([*self.message_ids, self.foreign["message_id"]]), min_size=1,
                                    max_size=3),
            "protocol_name": st.sampled_from([self.protocol["name"], self.foreign["protocol"]]),
            "protocol_version": st.just(self.protocol["version"]),
            "name": st.sampled_from([self.protocol["name"], *(s["name"] for s in self.sessions)]),
            "project_id": st.sampled_from(["alpha", "beta", "nope"]),
            "key_id": st.sampled_from(self.key_ids),
            # alpha's request to beta, which beta never answers: nothing may cross it.
            "link_id": st.sampled_from([*self.link_ids, "00000000-0000-0000-0000-000000000000"]),
            "target_project_id": st.sampled_from(["beta", "alpha", "nope"]),
        }

    @asynccontextmanager
    async def mcp_client(self, role: str, mode: str = "legacy") -> AsyncIterator[Client]:
        """The official MCP client with this role's key: mode "legacy" is the session-based protocol,
        "auto" the stateless one."""
        http = httpx2.AsyncClient(headers=self.headers(role), timeout=httpx2.Timeout(30, read=120))
        transport = streamable_http_client(f"{self.http_url}/mcp", http_client=http)
        async with http, Client(transport, mode=mode) as client:
            yield client

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


def seed(broker: FuzzTarget) -> FuzzTarget:
    """Sessions, a protocol and messages in alpha, a link request from alpha to beta that beta never answers,
    and sessions, a protocol and a message in beta to aim at from alpha."""
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
        asked = admin.post("/api/v1/links/", json={"target_project_id": "beta"})
        assert asked.status_code == 201, asked.text
        broker.link_ids.append(asked.json()["link_id"])
    beta = httpx.Client(base_url=broker.http_url, headers={"Authorization": f"Bearer {broker.keys['beta']}"},
                        timeout=60)
    with beta:
        assert beta.post("/api/v1/protocols/", json={**protocol, "name": "beta_proto"}).status_code == 201
        first, second = _connect(beta, "beta-a"), _connect(beta, "beta-b")
        broker.foreign = {"session_id": first["session_id"], "message_id": _send(beta, first, second),
                          "protocol": "beta_proto"}
    return broker




# --- one generated input, on one face -------------------------------------------------------------------

# Path parameters that get a real value now and then, by name.
PATH_PARAMETERS = ("message_id", "ref", "project_id", "key_id", "name", "version", "link_id")


def _path_value(name: str, known: dict) -> st.SearchStrategy:
    if name == "ref":
        return known["session_id"] | known["recipient_id"]
    if name == "version":
        return known["protocol_version"]
    if name == "name":
        return known["protocol_name"]
    if name == "project_id":
        # Not beta: an operator may really deactivate it, and it is the canary's project.
        return st.sampled_from(["alpha", "nope"])
    return known[name]


# Bodies no generator stumbles on by chance, sent to every operation that takes a body.
HOSTILE_BODIES = {
    "nested 100,000 deep": nested_text(100_000),
    "nested 5,000 deep under a known field": '{"payload": ' + nested_text(5_000) + ', "recipient_id": "fuzz-b"}',
    "not JSON": "{'payload': ",
    "a JSON string": '"hello"',
    "a huge number": '{"ttl": 1' + "0" * 5_000 + "}",
    "a NUL in a payload": '{"recipient_id": "fuzz-b", "payload": {"t": "a\\u0000"}}',
}


def hostile_body_calls(target: FuzzTarget, operation) -> Iterator[tuple[str, int, str]]:
    """Each hostile body put to `operation` (if it takes a body) with each role: (what was sent, status, answer text)."""
    if operation.body is None or not len(operation.body):
        return
    path = operation.path
    for name in PATH_PARAMETERS:
        path = path.replace("{" + name + "}", "alpha" if name == "project_id" else "x")
    for role in ("agent", "admin", "operator"):
        headers = {**target.headers(role), "Content-Type": "application/json",
                   "X-Session-Token": target.sessions[0]["token"]}
        with target.rest(role) as rest:
            for label, text in HOSTILE_BODIES.items():
                response = rest.request(operation.method.upper(), path, content=text, headers=headers)
                yield f"{operation.method.upper()} {path} as {role}, {label}", response.status_code, response.text


def rest_case_call(target: FuzzTarget, case, draw) -> tuple[str, int, str]:
    """Put one schemathesis case to the server with a drawn role (and, for session calls, a real token
    most of the time, real path ids half the time); (what was sent, status, answer text)."""
    role = draw(st.sampled_from(["agent", "admin", "operator"]))
    headers = target.headers(role)
    known = target.known()
    if any(p.name == "X-Session-Token" for p in case.operation.headers) and draw(st.integers(0, 4)) != 4:
        headers["X-Session-Token"] = draw(known["session_token"])
    for name in PATH_PARAMETERS:
        if name in (case.path_parameters or {}) and draw(st.booleans()):
            case.path_parameters[name] = draw(_path_value(name, known))
    case.body = clamp_waits(case.body) if isinstance(case.body, dict) else case.body
    if case.path.endswith("/keys/rotate/") and (case.body is None or isinstance(case.body, dict)):
        # Rotating without a key id replaces the calling key (or, for the operator, all of alpha's): the
        # longest grace keeps the keys this run calls with working to its end.
        case.body = {**(case.body or {}), "grace_period_seconds": 604_800}
    response = case.call(headers=headers, timeout=60)
    if response.status_code < 300 and (case.method.upper() == "PATCH" or case.path.endswith(("/disconnect/", "/deactivate/"))):
        target.restore()
    return f"{case.method.upper()} {case.formatted_path} as {role}: {case.body!r:.300}", response.status_code, response.text


# Tools whose success changes alpha for the calls after it; undone after each success.
UNDONE_AFTER = {"disconnect_session", "deactivate_project"}


def mcp_known(target: FuzzTarget, role: str) -> dict[str, st.SearchStrategy]:
    known = target.known()
    if role == "operator":
        # Not beta: an operator may really deactivate it, and it is the canary's project.
        known["project_id"] = st.sampled_from(["alpha", "nope"])
    return known


async def mcp_tool_call(target: FuzzTarget, client, tool: str, arguments: dict, key_id: str) -> tuple[str, str]:
    """Call one tool with generated arguments; (what was sent, the answer as text, its error code or "ok")."""
    if tool == "rotate_project_keys":
        arguments["key_id"] = key_id  # never the calling key: a grace of 0 would end the run
    arguments = clamp_waits(arguments)
    what = f"{tool}({arguments!r:.400})"
    try:
        result = await client.call_tool(tool, arguments)
    except MCPError as exc:
        if exc.code == JSONRPC_INTERNAL_ERROR:
            return what, f"JSON-RPC internal error: {exc.message}", "jsonrpc internal"
        return what, f"{exc.message} {exc.data}", f"jsonrpc {exc.code}"
    if tool in UNDONE_AFTER and not result.is_error:
        target.restore()
    text = mcp_answer_text(result)
    code = (result.structured_content or {}).get("error", "ok") if result.is_error else "ok"
    return what, text, code
