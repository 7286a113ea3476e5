"""The MCP face: every broker operation as a tool, over Streamable HTTP at /mcp."""
