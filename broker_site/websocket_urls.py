"""WebSocket routes. The real-time delivery issue adds the session consumer at /ws/sessions/."""

websocket_urlpatterns: list = []
