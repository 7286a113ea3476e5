"""Host and Origin checks for the faces Django's middleware does not cover (MCP and WebSocket).

The Host must be one of ALLOWED_HOSTS, by Django's own rules (wildcards and all). An Origin
is optional: agents and scripts send none. A browser names its page's origin, and that must
be one of ours too, which stops a page elsewhere (DNS rebinding, cross-site WebSocket) from
using a key the browser happens to hold.
"""

from django.conf import settings
from django.http.request import split_domain_port, validate_host


def host_allowed(headers: dict[str, str]) -> bool:
    """`headers` are lower-cased names to values."""
    host, _ = split_domain_port(headers.get("host", ""))
    if not host or not validate_host(host, settings.ALLOWED_HOSTS):
        return False
    origin = headers.get("origin")
    if origin:
        origin_host, _ = split_domain_port(origin.partition("://")[2])
        return bool(origin_host) and validate_host(origin_host, settings.ALLOWED_HOSTS)
    return True


class WebsocketHostGuard:
    """Refuses the WebSocket handshake (403) when the Host or Origin is not one of ours."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if host_allowed(headers):
            return await self.app(scope, receive, send)
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 1008})
