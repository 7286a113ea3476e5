"""A tenant's schema cannot freeze or stall the broker for anyone else (issue 11, defects 1, 2 and 14).

Against a live daphne: a schema-supplied regex runs in linear time, however it is written; heavy
`uniqueItems` payloads of one project do not hold up another project's WebSocket sends; a schema
whose `$ref` cannot resolve is refused when it is registered, not at every send. The bounds
below are liveness checks only (an answer at all within a generous time), not timings.
"""

import asyncio
import uuid

import httpx

LIVENESS_SECONDS = 10
EVIL = "^(a+)+$"  # catastrophic backtracking for a backtracking engine on "aaaa...!"


def _register(live_broker, key: str, name: str, schema: dict) -> httpx.Response:
    with live_broker.rest(key) as rest:
        return rest.post("/api/v1/protocols/", json={"name": name, "version": "1.0.0", "schema": schema})


def _declaring(name: str) -> dict:
    return {"capabilities": {"supported_protocols": {name: ["1.0.0"]}}}


async def _healthz(live_broker) -> int:
    async with httpx.AsyncClient(base_url=live_broker.server.http_url, timeout=LIVENESS_SECONDS) as client:
        return (await client.get("/healthz")).status_code


async def test_an_evil_pattern_neither_freezes_the_server_nor_backtracks(live_broker):
    name = f"evil_{uuid.uuid4().hex[:6]}"
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": EVIL}}}
    assert _register(live_broker, live_broker.agent_key, name, schema).status_code == 201
    async with live_broker.connect(**_declaring(name)) as sender, live_broker.connect(**_declaring(name)) as peer:
        frame = {"type": "send", "recipient_id": peer.session_id, "protocol_name": name, "protocol_version": "1.0.0"}
        # 30 characters: about a minute for Python's re; the whole process would wait with it.
        evil = asyncio.create_task(sender.request({**frame, "payload": {"s": "a" * 30 + "!"}},
                                                  timeout=LIVENESS_SECONDS))
        canary = asyncio.create_task(_healthz(live_broker))
        refused, canary_status = await evil, await canary
        assert refused["type"] == "error" and refused["error"] == "validation_error", refused
        assert refused["details"]["constraint"] == "pattern" and refused["details"]["path"] == "$.s"
        assert canary_status == 200
        # Linear time: a 100,000-character input under the same pattern validates.
        accepted = await sender.request({**frame, "payload": {"s": "a" * 100_000}}, timeout=LIVENESS_SECONDS)
        assert accepted["type"] == "result", accepted
        refused = await sender.request({**frame, "payload": {"s": "a" * 100_000 + "!"}}, timeout=LIVENESS_SECONDS)
        assert refused["type"] == "error" and refused["details"]["constraint"] == "pattern"


async def test_an_evil_pattern_property_runs_in_linear_time_too(live_broker):
    name = f"evilkeys_{uuid.uuid4().hex[:6]}"
    schema = {"type": "object", "patternProperties": {EVIL: {"type": "integer"}}, "additionalProperties": False}
    assert _register(live_broker, live_broker.agent_key, name, schema).status_code == 201
    async with live_broker.connect(**_declaring(name)) as sender, live_broker.connect(**_declaring(name)) as peer:
        frame = {"type": "send", "recipient_id": peer.session_id, "protocol_name": name, "protocol_version": "1.0.0"}
        evil = asyncio.create_task(sender.request({**frame, "payload": {"a" * 30 + "!": 1}}, timeout=LIVENESS_SECONDS))
        canary = asyncio.create_task(_healthz(live_broker))
        refused, canary_status = await evil, await canary
        assert refused["type"] == "error" and refused["error"] == "validation_error", refused
        assert canary_status == 200
        accepted = await sender.request({**frame, "payload": {"a" * 100_000: 1}}, timeout=LIVENESS_SECONDS)
        assert accepted["type"] == "result", accepted


def test_a_pattern_the_safe_engine_cannot_run_is_refused_at_registration(live_broker):
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(\\w+)\\1$"}}}
    response = _register(live_broker, live_broker.agent_key, f"backref_{uuid.uuid4().hex[:6]}", schema)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["details"]["path"] == "$.properties.s.pattern"
    assert body["details"]["pattern"] == "^(\\w+)\\1$"


async def test_heavy_unique_items_of_one_project_do_not_hold_up_another_projects_sends(live_broker):
    name = f"bulk_{uuid.uuid4().hex[:6]}"
    schema = {"type": "object", "properties": {"rows": {"type": "array", "uniqueItems": True}}}
    assert _register(live_broker, live_broker.agent_key, name, schema).status_code == 201
    # About 60 KB each: 3,000 distinct objects, the shape that took 7.9 s to validate.
    heavy = {"rows": [{"id": i, "tag": "x"} for i in range(3000)]}
    async with live_broker.connect(**_declaring(name)) as peer:
        senders = [live_broker.connect(**_declaring(name)) for _ in range(4)]
        clients = [await s.__aenter__() for s in senders]
        try:
            frame = {"type": "send", "recipient_id": peer.session_id, "protocol_name": name,
                     "protocol_version": "1.0.0", "payload": heavy}
            tenant_a = [asyncio.create_task(c.request(frame, timeout=120)) for c in clients]
            await asyncio.sleep(0.2)  # A's frames are in (or past) their validation
            async with live_broker.connect(live_broker.other_project_key) as b1, \
                    live_broker.connect(live_broker.other_project_key) as b2:
                answer = await b1.request({"type": "send", "recipient_id": b2.session_id, "payload": {"n": 1}},
                                          timeout=LIVENESS_SECONDS)
                assert answer["type"] == "result", answer
            for result in await asyncio.gather(*tenant_a):
                assert result["type"] == "result", result
        finally:
            for s in senders:
                await s.__aexit__(None, None, None)


def test_a_schema_with_an_unresolvable_ref_is_refused_at_registration(live_broker):
    name = f"refs_{uuid.uuid4().hex[:6]}"
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}, "$defs": {"b": {"type": "string"}}}
    response = _register(live_broker, live_broker.agent_key, name, schema)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["details"]["constraint"] == "$ref"
    assert body["details"]["path"] == "$.properties.a['$ref']"
    assert body["details"]["ref"] == "#/$defs/missing"
    fixed = dict(schema, properties={"a": {"$ref": "#/$defs/b"}})
    assert _register(live_broker, live_broker.agent_key, name, fixed).status_code == 201
