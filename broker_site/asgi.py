"""The one ASGI router: HTTP (Django, and MCP at /mcp), WebSocket (Channels consumers) and lifespan."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "broker_site.settings")

from django.core.asgi import get_asgi_application

django_http = get_asgi_application()  # sets Django up before anything imports models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from broker_site.hosts import WebsocketHostGuard  # noqa: E402
from broker_site.lifespan import StartOnFirstRequest, lifespan_app  # noqa: E402
from broker_site.mcp.server import MountMcp  # noqa: E402
from broker_site.startup import start_background, stop_background  # noqa: E402
from broker_site.websocket_urls import websocket_urlpatterns  # noqa: E402

http_app = ASGIStaticFilesHandler(django_http) if settings.SERVE_STATIC else django_http

application = ProtocolTypeRouter(
    {
        # /mcp goes to the MCP server (it authenticates itself: Django middleware does not run there).
        "http": StartOnFirstRequest(MountMcp(http_app), start_background),
        "websocket": StartOnFirstRequest(WebsocketHostGuard(URLRouter(websocket_urlpatterns)), start_background),
        # daphne sends no lifespan events; uvicorn does. Startup work must not rely on them alone.
        "lifespan": lifespan_app(start_background, stop_background),
    }
)
