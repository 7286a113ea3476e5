"""Calling a tool and reading its structured result, or its SPEC-shaped error; hearing inbox updates."""

import asyncio

import mcp_types as types


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
