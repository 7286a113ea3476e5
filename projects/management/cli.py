"""What the broker's management commands share: printing a new key or session token once, and error mapping."""

import json

from django.conf import settings
from django.core.management.base import CommandError

from broker_site.errors import BrokerError


def connect_lines(raw_key: str, base_url: str | None = None) -> list[str]:
    """Ready-to-paste lines for an MCP client and for curl, with a real key."""
    url = (base_url or settings.BROKER["PUBLIC_URL"]).rstrip("/")
    return [
        "MCP client (Claude Code):",
        f'  claude mcp add --transport http broker {url}/mcp --header "Authorization: Bearer {raw_key}"',
        "REST:",
        f'  curl -H "Authorization: Bearer {raw_key}" {url}/api/v1/sessions/',
    ]


def session_lines(token: str, base_url: str | None = None) -> list[str]:
    """Ready-to-paste lines that configure an MCP client as one session: the key and the session's token as headers."""
    url = (base_url or settings.BROKER["PUBLIC_URL"]).rstrip("/")
    mcp_json = {"mcpServers": {"broker": {"type": "http", "url": f"{url}/mcp", "headers": {
        "Authorization": "Bearer ${BROKER_KEY}", "X-Session-Token": "${BROKER_SESSION_TOKEN}"}}}}
    return [
        "MCP client (Claude Code), with one of the project's agent keys:",
        f'  claude mcp add --transport http broker {url}/mcp --header "Authorization: Bearer YOUR_AGENT_KEY" '
        f'--header "X-Session-Token: {token}"',
        "Or a .mcp.json, with BROKER_KEY (an agent key) and BROKER_SESSION_TOKEN (the token above) in the environment:",
        *("  " + line for line in json.dumps(mcp_json, indent=2).splitlines()),
    ]


def as_command_error(exc: BrokerError) -> CommandError:
    details = f" {exc.details}" if exc.details else ""
    return CommandError(f"{exc.code}: {exc.message}{details}")
