"""The one ASGI router: HTTP (Django, and MCP at /mcp), WebSocket (Channels consumers) and lifespan."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "broker_site.settings")

from django.core.asgi import get_asgi_application

django_http = get_asgi_application()  # sets Django up before anything imports models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from broker_site.hosts import WebsocketHostGuard  # noqa: E402
from broker_site.lifespan import StartBackgroundOnFirstRequest, lifespan  # noqa: E402
from broker_site.mcp.server import MountMcp  # noqa: E402
from broker_site.websocket_urls import websocket_urlpatterns  # noqa: E402

http_app = ASGIStaticFilesHandler(django_http) if settings.SERVE_STATIC else django_http

application = ProtocolTypeRouter(
    {
        # /mcp goes to the MCP server (it authenticates itself: Django middleware does not run there).
        "http": StartBackgroundOnFirstRequest(MountMcp(http_app)),
        "websocket": StartBackgroundOnFirstRequest(WebsocketHostGuard(URLRouter(websocket_urlpatterns))),
        # daphne sends no lifespan events; uvicorn does. Startup work must not rely on them alone.
        "lifespan": lifespan,
    }
)
