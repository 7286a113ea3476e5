"""What the broker's management commands share: printing a new key once, and error mapping."""

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


def as_command_error(exc: BrokerError) -> CommandError:
    details = f" {exc.details}" if exc.details else ""
    return CommandError(f"{exc.code}: {exc.message}{details}")
