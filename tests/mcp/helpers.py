"""Calling a tool and reading its structured result, or its SPEC-shaped error; hearing inbox updates and
Claude Code channel events."""

import asyncio

import mcp_types as types
from mcp import Client
from mcp.client.extension import ClientExtension, NotificationBinding
from pydantic import BaseModel, ConfigDict


async def call(client, tool: str, **arguments) -> dict:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def fails(client, tool: str, **arguments) -> dict:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    assert set(result.structured_content) == {"error", "message", "details"}
    return result.structured_content


class InboxUpdates:
    """A client message handler that collects the URIs of resources/updated notifications, in arrival order."""

    def __init__(self) -> None:
        self.uris: asyncio.Queue[str] = asyncio.Queue()

    async def __call__(self, message) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.uris.put_nowait(message.params.uri)

    async def next(self, timeout: float = 10) -> str:
        return await asyncio.wait_for(self.uris.get(), timeout)


class ChannelClient(Client):
    """An SDK client that declares Claude Code's experimental `claude/channel` capability.

    The SDK's ClientSession declares no experimental capabilities (mcp 2.3.0 `_build_capabilities`
    sets none), so this test-only seam adds it to what the session declares: in `initialize` on
    the session-based protocol, in every request's `_meta` on 2026-07-28.
    """

    async def _build_session(self, exit_stack):
        session = await super()._build_session(exit_stack)
        build = session._build_capabilities

        def with_channel(version):
            return build(version).model_copy(update={"experimental": {"claude/channel": {}}})

        session._build_capabilities = with_channel
        return session


class ChannelParams(BaseModel):
    model_config = ConfigDict(extra="allow")  # a listen stamps its id in _meta

    content: str
    meta: dict[str, str]


class ChannelEvents(ClientExtension):
    """Collects `notifications/claude/channel` params, in arrival order (unknown to the SDK: a binding hears them)."""

    identifier = "dev.broker-tests/channel-events"

    def __init__(self) -> None:
        self.events: asyncio.Queue[ChannelParams] = asyncio.Queue()

    def notifications(self):
        async def heard(params: ChannelParams) -> None:
            self.events.put_nowait(params)

        return [NotificationBinding(method="notifications/claude/channel", params_type=ChannelParams, handler=heard)]

    async def next(self, timeout: float = 10) -> ChannelParams:
        return await asyncio.wait_for(self.events.get(), timeout)


def with_listen_token(client, token: str) -> None:
    """Put `token` in the `_meta` of this client's subscriptions/listen requests (the SDK's listen takes no _meta)."""
    session = client.session
    stamp = session._stamp

    def stamped(data, opts) -> None:
        stamp(data, opts)
        if data["method"] == "subscriptions/listen":
            data["params"]["_meta"]["broker/session_token"] = token

    session._stamp = stamped


async def projects_linked(broker, **accept) -> str:
    """alpha asks beta for a link through the tools and beta accepts (`accept`: narrower terms); its id."""
    async with broker.client(broker.admin_key) as alpha, broker.client(broker.other_project_key) as beta:
        asked = await call(alpha, "request_project_link", target_project_id="beta", rate_limit_per_minute=100)
        assert (asked["state"], asked["side"]) == ("pending", "source")
        [incoming] = (await call(beta, "list_project_links", state="pending"))["links"]
        assert (incoming["link_id"], incoming["side"], incoming["other_project_id"]) == (
            asked["link_id"], "target", "alpha")
        accepted = await call(beta, "accept_project_link", link_id=asked["link_id"], **accept)
        assert accepted["state"] == "active"
        seen_by_alpha = (await call(alpha, "list_project_links", state="active"))["links"]
        assert [link["link_id"] for link in seen_by_alpha] == [asked["link_id"]]
        return asked["link_id"]


def acting_as(session: dict, mode: str) -> dict[str, str]:
    """What a session tool needs to act as `session` (connect_session's answer): nothing on the session-bound
    connection that connected it (legacy), its token on a stateless one."""
    return {} if mode == "legacy" else {"session_token": session["session_token"]}
