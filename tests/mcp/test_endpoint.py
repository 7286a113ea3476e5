"""The /mcp endpoint itself: mounted beside Django under daphne, authenticated before MCP runs."""

import json

import httpx

EXPECTED_TOOLS = {
    "connect_session", "heartbeat", "disconnect_session", "list_sessions", "register_protocol", "discover_protocols",
    "negotiate_capabilities", "send_message", "broadcast_message", "receive_messages", "ack_messages",
    "get_message_status", "list_dead_letters", "replay_dead_letter", "create_project", "list_projects",
    "get_project_info", "rotate_project_keys", "deactivate_project", "request_project_link", "accept_project_link",
    "manage_project_link", "list_project_links",
}


async def test_list_tools_shows_every_tool_with_a_strict_schema(live_broker):
    async with live_broker.client() as client:
        tools = (await client.list_tools()).tools
    assert {t.name for t in tools} == EXPECTED_TOOLS
    for t in tools:
        assert t.description and len(t.description) < 250, t.name
        assert t.input_schema["additionalProperties"] is False, t.name


async def test_tools_list_size_is_reported(live_broker, capsys):
    async with live_broker.client() as client:
        tools = (await client.list_tools()).tools
    listing = json.dumps({"tools": [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]},
                         separators=(",", ":"))
    with capsys.disabled():
        print(f"\ntools/list: {len(tools)} tools, {len(listing)} characters, ~{len(listing) // 4} tokens")
    assert len(listing) < 12_000


def test_bad_key_gets_401_with_the_spec_body_before_any_mcp_handling(live_broker):
    for headers in ({"Authorization": "Bearer alpha_nokey_" + "x" * 40}, {"X-API-Key": "nonsense"}, {}):
        response = httpx.post(live_broker.url, headers={**headers, "Accept": "application/json, text/event-stream"},
                              json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json() == {"error": "unauthorized", "message": "Missing or invalid API key.", "details": {}}


def test_x_api_key_header_and_trailing_slash_both_reach_the_mcp_app(live_broker):
    response = httpx.post(live_broker.url + "/", headers={"X-API-Key": live_broker.agent_key,
                                                          "Accept": "application/json, text/event-stream"},
                          json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                              "protocolVersion": "2025-06-18", "capabilities": {},
                              "clientInfo": {"name": "probe", "version": "0"}}})
    assert response.status_code == 200, response.text
    assert response.headers.get("mcp-session-id")


def test_a_host_outside_allowed_hosts_is_refused(live_broker):
    response = httpx.post(live_broker.url, headers={"Authorization": f"Bearer {live_broker.agent_key}",
                                                    "Host": "evil.example"},
                          json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert response.status_code == 400
    assert response.json()["details"]["field"] == "host"


def test_django_still_serves_everything_else(live_broker):
    base = live_broker.url.removesuffix("/mcp")
    assert httpx.get(f"{base}/healthz").status_code == 200
    assert httpx.get(f"{base}/api/v1/sessions/").status_code == 401
