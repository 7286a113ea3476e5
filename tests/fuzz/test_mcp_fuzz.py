"""Hypothesis-generated arguments for every MCP tool, through the official client against the live
server, with keys of every role, on both protocol generations (session-based and stateless).

Arguments are mostly of the declared types (to get into the logic), with real ids and tokens of
alpha (and beta's, to knock on its door), wrong types, unknown fields, huge and deep values.
Pass condition: a tool error carries a clear code (never internal_error), no JSON-RPC internal
error, no traceback text; the canary of project beta answered throughout.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mcp.shared.exceptions import MCPError

from devtools.fuzzing import JSONRPC_INTERNAL_ERROR, LoopThread, arguments_for, clamp_waits, mcp_answer_text
from tests.fuzz.conftest import FuzzBroker, assert_answer_sound, fuzz_settings

ROLES_AND_MODES = [("agent", "legacy"), ("agent", "auto"), ("admin", "legacy"), ("operator", "auto")]
# Tools whose success changes alpha for the calls after it; undone after each success.
UNDONE_AFTER = {"disconnect_session", "deactivate_project"}


@pytest.fixture(scope="module")
def loop():
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.mark.parametrize(("role", "mode"), ROLES_AND_MODES)
def test_no_tool_answers_a_server_error(fuzz_broker: FuzzBroker, loop: LoopThread, role: str, mode: str):
    headers = {"X-Project-ID": "alpha"} if role == "operator" else {}
    client, close = loop.hold(fuzz_broker.mcp.client(fuzz_broker.key(role), mode=mode, **headers))
    try:
        tools = loop.run(client.list_tools()).tools
        assert len(tools) >= 19
        failures = {}
        for tool in tools:
            try:
                _fuzzer(fuzz_broker, loop, client, tool, role)()
            except Exception as exc:  # collect every tool's failure, then fail once
                failures[tool.name] = str(exc)[:2000]
        assert not failures, "\n\n".join(f"{name}:\n{text}" for name, text in failures.items())
    finally:
        close()


def _fuzzer(broker: FuzzBroker, loop: LoopThread, client, tool, role: str):
    known = broker.known()
    if role == "operator":
        # Not beta: an operator may really deactivate it, and it is the canary's project.
        known["project_id"] = st.sampled_from(["alpha", "nope"])

    @fuzz_settings(default_examples=5)
    @given(arguments=arguments_for(tool.input_schema, known), key_id=known["key_id"])
    def fuzz(arguments, key_id) -> None:
        if tool.name == "rotate_project_keys":
            arguments["key_id"] = key_id  # never the calling key: a grace of 0 would end this run
        arguments = clamp_waits(arguments)
        what = f"{tool.name}({arguments!r:.400}) as {role}"
        try:
            result = loop.run(client.call_tool(tool.name, arguments))
        except MCPError as exc:
            assert exc.code != JSONRPC_INTERNAL_ERROR, f"JSON-RPC internal error for {what}: {exc.message}"
            assert_answer_sound(what, None, f"{exc.message} {exc.data}")
            return
        assert_answer_sound(what, None, mcp_answer_text(result))
        if tool.name in UNDONE_AFTER and not result.is_error:
            broker.restore()

    return fuzz
