"""WebSocket routes. Any other path is refused at the handshake instead of raising in the router."""

from django.urls import path, re_path

from routing.consumers import SessionConsumer


async def unknown_path(scope, receive, send) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.close", "code": 4404})


websocket_urlpatterns = [
    path("ws/sessions/", SessionConsumer.as_asgi()),
    re_path(r"", unknown_path),
]
