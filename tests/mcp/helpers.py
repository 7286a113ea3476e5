"""Calling a tool and reading its structured result, or its SPEC-shaped error."""


async def call(client, tool: str, **arguments) -> dict:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def fails(client, tool: str, **arguments) -> dict:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    assert set(result.structured_content) == {"error", "message", "details"}
    return result.structured_content
