"""Hypothesis-generated arguments for every MCP tool, through the official client against the live
server, with keys of every role, on both protocol generations (session-based and stateless).

Arguments are mostly of the declared types (to get into the logic), with real ids and tokens of
alpha (and beta's, to knock on its door), wrong types, unknown fields, huge and deep values.
Pass condition: a tool error carries a clear code (never internal_error), no JSON-RPC internal
error, no traceback text; the canary of project beta answered throughout.
"""

import pytest
from hypothesis import given

from broker_site.mcp.server import server
from devtools.fuzz_target import FuzzTarget, mcp_known, mcp_tool_call
from devtools.fuzzing import LoopThread, arguments_for, nested_text
from tests.fuzz.conftest import assert_answer_sound, fuzz_settings


async def every_tool():
    """The server's whole tool list, as the SDK serves it before the role filter (broker_site.mcp.registry)."""
    return await server.list_tools()


ROLES_AND_MODES = [("agent", "legacy"), ("agent", "auto"), ("admin", "legacy"), ("operator", "auto")]


@pytest.fixture(scope="module")
def loop():
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.mark.parametrize(("role", "mode"), ROLES_AND_MODES)
def test_no_tool_answers_a_server_error(fuzz_broker: FuzzTarget, loop: LoopThread, role: str, mode: str):
    client, close = loop.hold(fuzz_broker.mcp_client(role, mode))
    try:
        listed = {tool.name for tool in loop.run(client.list_tools()).tools}
        # Every tool, not only those listed for the role: a key may call any, and must be answered cleanly.
        tools = loop.run(every_tool())
        assert listed < {tool.name for tool in tools} or role == "operator"
        failures = {}
        for tool in tools:
            try:
                _fuzzer(fuzz_broker, loop, client, tool, role)()
            except Exception as exc:  # collect every tool's failure, then fail once
                failures[tool.name] = str(exc)[:2000]
        assert not failures, "\n\n".join(f"{name}:\n{text}" for name, text in failures.items())
    finally:
        close()


def _fuzzer(target: FuzzTarget, loop: LoopThread, client, tool, role: str):
    known = mcp_known(target, role)

    @fuzz_settings(default_examples=5)
    @given(arguments=arguments_for(tool.input_schema, known), key_id=known["key_id"])
    def fuzz(arguments, key_id) -> None:
        what, text, code = loop.run(mcp_tool_call(target, client, tool.name, arguments, key_id))
        assert code != "jsonrpc internal", f"{text} for {what} as {role}"
        assert_answer_sound(f"{what} as {role}", None, text)

    return fuzz


def test_a_deeply_nested_request_is_refused_cleanly(fuzz_broker: FuzzTarget):
    """Deeper than any client writes: raw JSON-RPC over HTTP, 100,000 levels in a tool's arguments."""
    deep = nested_text(100_000)
    body = ('{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "send_message", '
            f'"arguments": {{"payload": {deep}}}}}}}')
    with fuzz_broker.rest() as rest:
        response = rest.post("/mcp", content=body, headers={"Content-Type": "application/json",
                                                            "Accept": "application/json, text/event-stream"})
    assert_answer_sound("a 100,000-deep tools/call", response.status_code, response.text)
    assert response.status_code == 400, response.text
