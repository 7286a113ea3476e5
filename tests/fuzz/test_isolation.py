"""Randomized tenant isolation against a live broker: three projects, 1,000 random operations across
REST, MCP and WebSockets, with agent and admin keys of each and an operator key acting in one of them
with X-Project-ID. Every id a project owns is tracked (project, sessions and their names, messages,
protocols, keys); every answer a project gets is scanned for another project's ids. An id the caller
itself put in its request (knocking on another project's door) may be echoed back; nothing else may.

The seed is fixed (BROKER_ISOLATION_SEED overrides it) and printed on failure; BROKER_ISOLATION_OPS
changes the number of operations.
"""

import asyncio
import json
import os
import random
import secrets
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import websockets

SEED = int(os.environ.get("BROKER_ISOLATION_SEED", "11"))
OPERATIONS = int(os.environ.get("BROKER_ISOLATION_OPS", "1000"))


@pytest.fixture
def isolation_broker(fuzz_broker):
    """The fuzz modules' server (its canary runs meanwhile); the test makes projects of its own."""
    return fuzz_broker.live


@dataclass
class Tenant:
    """One project, its keys and clients on every face, and every id it owns."""

    project_id: str
    keys: dict[str, str]
    owned: set[str] = field(default_factory=set)
    sessions: list[dict[str, str]] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    protocols: list[str] = field(default_factory=list)
    rest: dict[str, httpx.AsyncClient] = field(default_factory=dict)
    mcp: dict[str, Any] = field(default_factory=dict)
    ws: dict[str, Any] = field(default_factory=dict)

    def own(self, *ids: str) -> None:
        self.owned.update(i for i in ids if i)


@dataclass
class Scanner:
    """Scans every answer a tenant got for ids that other tenants own."""

    tenants: list[Tenant]
    seed: int
    leaks: list[str] = field(default_factory=list)
    answers: int = 0
    by_face: dict[str, int] = field(default_factory=dict)

    def scan(self, tenant: Tenant, face: str, what: str, request_text: str, answer_text: str) -> None:
        self.answers += 1
        self.by_face[face] = self.by_face.get(face, 0) + 1
        for other in self.tenants:
            if other is tenant:
                continue
            for foreign in other.owned:
                if foreign in answer_text and foreign not in request_text:
                    self.leaks.append(f"{tenant.project_id} got {other.project_id}'s {foreign!r} from {face} {what}: "
                                      f"{answer_text[:400]}")


def _ids_in(value: Any, names: tuple[str, ...]) -> list[str]:
    """Values of the given fields anywhere in a JSON answer (the ids a creating call hands back)."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in names and isinstance(item, str):
                found.append(item)
            found.extend(_ids_in(item, names))
    elif isinstance(value, list):
        for item in value:
            found.extend(_ids_in(item, names))
    return found


OWNED_FIELDS = ("session_id", "message_id", "key_id", "broadcast_id")


class World:
    """The tenants and the random operations on them; `rng` picks everything."""

    def __init__(self, broker, rng: random.Random) -> None:
        self.broker = broker
        self.rng = rng
        self.tenants: list[Tenant] = []
        self.scanner: Scanner | None = None
        self.stack = AsyncExitStack()
        self.counter = 0

    # --- set-up -----------------------------------------------------------------------------------

    async def setup(self) -> None:
        http_url = self.broker.process.http_url
        operator = {"Authorization": f"Bearer {self.broker.operator_key}"}
        suffix = secrets.token_hex(3)
        async with httpx.AsyncClient(base_url=http_url, headers=operator, timeout=60) as ops:
            for color in ("red", "green", "blue"):
                project_id = f"iso-{color}-{suffix}"
                created = await ops.post("/api/v1/projects/", json={"project_id": project_id, "name": color.title()})
                assert created.status_code == 201, created.text
                admin_key = created.json()["admin_key"]["api_key"]
                tenant = Tenant(project_id, {"admin": admin_key})
                tenant.own(project_id, created.json()["admin_key"]["key_id"])
                self.tenants.append(tenant)
        self.scanner = Scanner(self.tenants, SEED)
        for tenant in self.tenants:
            made = await self._client(tenant, "admin").post(f"/api/v1/projects/{tenant.project_id}/keys/",
                                                             json={"role": "agent", "label": "iso"})
            assert made.status_code == 201, made.text
            tenant.keys["agent"] = made.json()["api_key"]
            tenant.own(made.json()["key_id"])
        # The operator acts in the first project only, with X-Project-ID.
        red = self.tenants[0]
        red.keys["operator"] = self.broker.operator_key
        for tenant in self.tenants:
            for index, role in enumerate(tenant.keys):
                await self._open_faces(tenant, role, index)

    def _client(self, tenant: Tenant, role: str) -> httpx.AsyncClient:
        if role not in tenant.rest:
            headers = {"Authorization": f"Bearer {tenant.keys[role]}"}
            if role == "operator":
                headers["X-Project-ID"] = tenant.project_id
            tenant.rest[role] = httpx.AsyncClient(base_url=self.broker.process.http_url, headers=headers, timeout=60)
            self.stack.push_async_callback(tenant.rest[role].aclose)
        return tenant.rest[role]

    async def _open_faces(self, tenant: Tenant, role: str, index: int) -> None:
        """A REST session, an MCP client bound to a session, and a WebSocket session, for this key."""
        rest = self._client(tenant, role)
        name = f"{tenant.project_id}-rest-{role}"
        connected = await rest.post("/api/v1/sessions/", json={"name": name})
        assert connected.status_code == 201, connected.text
        tenant.sessions.append({"session_id": connected.json()["session_id"], "name": name,
                                "token": connected.json()["session_token"], "role": role})
        tenant.own(connected.json()["session_id"], name)

        headers = {"X-Project-ID": tenant.project_id} if role == "operator" else {}
        client = await self.stack.enter_async_context(self.broker.client(tenant.keys[role], mode="legacy", **headers))
        name = f"{tenant.project_id}-mcp-{role}"
        result = await client.call_tool("connect_session", {"name": name})
        assert not result.is_error, result.content[0].text
        tenant.own(result.structured_content["session_id"], name)
        tenant.mcp[role] = client

        socket = await self.stack.enter_async_context(websockets.connect(
            self.broker.process.ws_url, additional_headers={"Authorization": f"Bearer {tenant.keys[role]}"},
            max_size=None))
        name = f"{tenant.project_id}-ws-{role}"
        hello = {"type": "hello", "name": name, "request_id": "hello"}
        if role == "operator":
            hello["project_id"] = tenant.project_id
        await socket.send(json.dumps(hello))
        welcome = await self._ws_answer(tenant, socket, "hello", json.dumps(hello))
        assert welcome.get("type") == "welcome", welcome
        tenant.own(welcome["session_id"], name)
        tenant.ws[role] = socket

        protocol = f"{tenant.project_id.replace('-', '_')}_p{index}"
        registered = await rest.post("/api/v1/protocols/", json={
            "name": protocol, "version": "1.0.0", "capabilities": ["point_to_point"], "schema": {"type": "object"}})
        assert registered.status_code == 201, registered.text
        tenant.protocols.append(protocol)
        tenant.own(protocol)

    # --- the random operations ---------------------------------------------------------------------

    def any_session_ref(self, tenant: Tenant) -> str:
        """Mostly one of this tenant's sessions (by id or name), sometimes another tenant's."""
        owner = tenant if self.rng.random() < 0.7 else self.rng.choice(self.tenants)
        refs = [r for r in owner.owned if r.count("-") == 4 or "-rest-" in r or "-ws-" in r or "-mcp-" in r]
        return self.rng.choice(sorted(refs))

    def payload(self) -> dict:
        """Every tenant writes the same words, so a search that leaked would find another project's message."""
        return {"n": self.rng.randint(0, 1000), "text": f"fuzz word{self.rng.randint(0, 3)}"}

    def any_message_ids(self, tenant: Tenant) -> list[str]:
        pool = [m for t in self.tenants for m in t.message_ids[-30:]] or ["00000000-0000-0000-0000-000000000000"]
        return self.rng.sample(pool, min(len(pool), self.rng.randint(1, 3)))

    def any_protocol(self, tenant: Tenant) -> str:
        owner = tenant if self.rng.random() < 0.7 else self.rng.choice(self.tenants)
        return self.rng.choice(owner.protocols)

    def any_project(self, tenant: Tenant, role: str) -> str:
        """An operator may manage any project by design: it names only the one it acts in."""
        if role == "operator" or self.rng.random() < 0.6:
            return tenant.project_id
        return self.rng.choice(self.tenants).project_id

    async def step(self) -> None:
        tenant = self.rng.choice(self.tenants)
        role = self.rng.choice(sorted(tenant.keys))
        face = self.rng.choice(["rest", "rest", "mcp", "ws"])
        await {"rest": self.rest_step, "mcp": self.mcp_step, "ws": self.ws_step}[face](tenant, role)

    async def rest_step(self, tenant: Tenant, role: str) -> None:
        session = self.rng.choice([s for s in tenant.sessions if s["role"] == role])
        acting = {"X-Session-Token": session["token"]}
        payload = self.payload()
        choices: list[tuple[str, str, dict | None, dict]] = [
            ("GET", "/api/v1/sessions/?status_filter=all", None, {}),
            ("GET", f"/api/v1/sessions/{self.any_session_ref(tenant)}/", None, {}),
            ("POST", "/api/v1/messages/", {"recipient_id": self.any_session_ref(tenant), "payload": payload}, acting),
            ("POST", "/api/v1/messages/broadcast/", {"payload": payload}, acting),
            ("POST", "/api/v1/messages/receive/", {"max": 5}, acting),
            ("POST", "/api/v1/messages/ack/", {"message_ids": self.any_message_ids(tenant)}, acting),
            ("GET", f"/api/v1/messages/{self.any_message_ids(tenant)[0]}/", None, acting),
            ("GET", "/api/v1/protocols/?include_shared=true", None, {}),
            ("GET", f"/api/v1/protocols/{self.any_protocol(tenant)}/1.0.0/?include_shared=true", None, {}),
            ("GET", f"/api/v1/protocols/{self.any_protocol(tenant)}/adapters/", None, {}),
            ("GET", "/api/v1/dead-letters/", None, {}),
            ("GET", f"/api/v1/dead-letters/{self.any_message_ids(tenant)[0]}/", None, {}),
            ("GET", f"/api/v1/threads/{self.any_message_ids(tenant)[0]}/", None, acting),
            ("GET", "/api/v1/messages/search/?query=fuzz", None, acting),
            ("POST", "/api/v1/leases/", {"paths": ["src/*.py"], "ttl_seconds": 5}, acting),
            ("GET", "/api/v1/leases/", None, {}),
            ("POST", "/api/v1/negotiate/", {"session_id": session["session_id"],
                                            "target_session_id": self.any_session_ref(tenant)}, {}),
            ("POST", "/api/v1/negotiate/matrix/", {}, {}),
            ("GET", f"/api/v1/projects/{self.any_project(tenant, role)}/?include_stats=true&include_config=true", None, {}),
            ("GET", f"/api/v1/projects/{self.any_project(tenant, role)}/keys/", None, {}),
            ("GET", f"/api/v1/projects/{self.any_project(tenant, role)}/audit/", None, {}),
            ("POST", "/api/v1/sessions/", {"name": f"{tenant.project_id}-extra-{self._next()}"}, {}),
        ]
        if role != "operator":
            # An operator's project list is broker-wide by design; agents and admins see their own.
            choices.append(("GET", "/api/v1/projects/?include_stats=true", None, {}))
        method, path, body, headers = self.rng.choice(choices)
        request_text = f"{method} {path} {json.dumps(body)}"
        response = await tenant.rest[role].request(method, path, json=body, headers=headers)
        self.scanner.scan(tenant, "rest", f"{request_text} as {role}", request_text, response.text)
        self.learn(tenant, response.json() if response.text.startswith("{") else None, request_text)

    async def mcp_step(self, tenant: Tenant, role: str) -> None:
        payload = self.payload()
        choices = [
            ("list_sessions", {"status_filter": "all"}),
            ("send_message", {"recipient_id": self.any_session_ref(tenant), "payload": payload}),
            ("broadcast_message", {"payload": payload}),
            ("receive_messages", {"max": 5}),
            ("ack_messages", {"message_ids": self.any_message_ids(tenant)}),
            ("get_message_status", {"message_id": self.any_message_ids(tenant)[0]}),
            ("get_thread", {"thread_id": self.any_message_ids(tenant)[0]}),
            ("search_messages", {"query": "fuzz word"}),
            ("lease_files", {"paths": ["src/main.py"], "ttl_seconds": 5}),
            ("list_leases", {}),
            ("request_reply", {"recipient_id": self.any_session_ref(tenant), "payload": payload,
                               "timeout_seconds": 0.1}),
            ("discover_protocols", {"include_shared": True}),
            ("discover_protocols", {"name": self.any_protocol(tenant), "include_shared": True}),
            ("negotiate_capabilities", {"target_session_id": self.any_session_ref(tenant)}),
            ("list_dead_letters", {}),
            ("get_project_info", {"project_id": self.any_project(tenant, role), "include_config": True}),
        ]
        if role != "operator":
            choices.append(("list_projects", {"include_stats": True}))
        tool, arguments = self.rng.choice(choices)
        request_text = f"{tool} {json.dumps(arguments)}"
        result = await tenant.mcp[role].call_tool(tool, arguments)
        texts = [getattr(block, "text", "") for block in result.content]
        answer = "\n".join([*texts, json.dumps(result.structured_content)])
        self.scanner.scan(tenant, "mcp", f"{request_text} as {role}", request_text, answer)
        self.learn(tenant, result.structured_content, request_text)

    async def ws_step(self, tenant: Tenant, role: str) -> None:
        payload = self.payload()
        frame = self.rng.choice([
            {"type": "send", "recipient_id": self.any_session_ref(tenant), "payload": payload},
            {"type": "broadcast", "payload": payload},
            {"type": "ack", "message_ids": self.any_message_ids(tenant)},
            {"type": "heartbeat"},
        ])
        request_id = f"op-{self._next()}"
        text = json.dumps({**frame, "request_id": request_id})
        socket = tenant.ws[role]
        await socket.send(text)
        await self._ws_answer(tenant, socket, request_id, text, f"{frame['type']} as {role}")

    async def _ws_answer(self, tenant: Tenant, socket, request_id: str, request_text: str, what: str = "hello") -> dict:
        """Read frames (pushes and presence too, each scanned) until the one answering `request_id`;
        pushed messages are acked so that queues keep moving."""
        while True:
            async with asyncio.timeout(60):
                raw = await socket.recv()
            if self.scanner is not None:
                self.scanner.scan(tenant, "ws", what, request_text, raw)
            frame = json.loads(raw)
            self.learn(tenant, frame, request_text)
            if frame.get("type") == "message":
                await socket.send(json.dumps({"type": "ack", "message_ids": [frame["message"]["message_id"]]}))
            if frame.get("request_id") == request_id:
                return frame

    def learn(self, tenant: Tenant, answer: Any, request_text: str) -> None:
        """Ids a call created (a send's message id, a new session, a key) belong to the caller's project:
        learnt only from answers already scanned, and only ids no project owns yet."""
        for found in _ids_in(answer, OWNED_FIELDS):
            if found in request_text or any(found in t.owned for t in self.tenants):
                continue
            tenant.own(found)
        for found in _ids_in(answer, ("message_id",)):
            if found in tenant.owned and found not in tenant.message_ids:
                tenant.message_ids.append(found)

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    async def close(self) -> None:
        await self.stack.aclose()


async def test_no_answer_names_another_projects_ids(isolation_broker):
    rng = random.Random(SEED)
    world = World(isolation_broker, rng)
    await world.setup()
    try:
        for _ in range(OPERATIONS):
            await world.step()
    finally:
        await world.close()
    scanner = world.scanner
    print(f"isolation: seed {SEED}, {scanner.answers} answers scanned by face {scanner.by_face}, "
          f"ids owned {[len(t.owned) for t in world.tenants]}")
    assert scanner.by_face.get("rest") and scanner.by_face.get("mcp") and scanner.by_face.get("ws")
    assert not scanner.leaks, (f"seed {SEED} (BROKER_ISOLATION_SEED={SEED} reproduces it): {len(scanner.leaks)} leaks:\n"
                               + "\n".join(scanner.leaks[:10]))


def test_the_audit_view_names_no_other_projects_key(isolation_broker):
    """Found by the random operations: the key that knocked on a project's door was named in its audit view."""
    url = isolation_broker.process.http_url
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {isolation_broker.other_project_key}"}) as beta:
        assert beta.get("/api/v1/projects/alpha/").status_code == 403
        beta_key_id = isolation_broker.other_project_key.split("_")[1]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {isolation_broker.admin_key}"}) as alpha:
        audit = alpha.get("/api/v1/projects/alpha/audit/")
    assert audit.status_code == 200
    events = audit.json()["events"]
    foreign = [e for e in events if e["source_project"] == "beta" or beta_key_id in (e["actor_key_id"] or "")]
    assert not foreign, foreign[:3]
    # The knock is still on the record, only its author is not named.
    assert any(e["actor"] == "another project" and e["outcome"] == "denied" for e in events if "actor" in e)
