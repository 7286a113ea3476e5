"""The ceiling for bench/ws_load.py: a bare Channels echo with no database, speaking the broker's frames.

`hello` joins the session's group (named after the hello's name, which is also its session
id here) and everyone's group; `send` relays the payload through `group_send` to the
recipient's group and answers with a result at once; `broadcast` relays to everyone's group;
`ack` is accepted and ignored. So a message goes client -> daphne -> channel layer -> daphne
-> client, exactly the path of a broker push, minus the database and the broker's own code.

    DJANGO_SETTINGS_MODULE=bench.echo_settings python -m daphne bench.echo_app:application
"""

import os
import uuid

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.echo_settings")

import django

django.setup()

from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

EVERYONE = "echo.everyone"


def session_group(session_id: str) -> str:
    return f"echo.session.{session_id}"


class EchoConsumer(AsyncJsonWebsocketConsumer):
    session_id: str | None = None

    async def receive_json(self, content, **kwargs):
        kind = content.get("type")
        if kind == "hello":
            await self.hello(content)
        elif kind == "send" and self.session_id:
            await self.relay(content)
        elif kind == "broadcast" and self.session_id:
            await self.broadcast(content)

    async def hello(self, frame: dict) -> None:
        self.session_id = str(frame["name"])
        await self.channel_layer.group_add(session_group(self.session_id), self.channel_name)
        await self.channel_layer.group_add(EVERYONE, self.channel_name)
        await self.send_json({"type": "welcome", "session_id": self.session_id, "request_id": frame.get("request_id")})

    async def relay(self, frame: dict) -> None:
        message = self.message(frame)
        await self.channel_layer.group_send(session_group(str(frame["recipient_id"])),
                                            {"type": "echo.push", "message": message})
        await self.send_json({"type": "result", "for": "send", "request_id": frame.get("request_id"),
                              "result": {"message_id": message["message_id"], "status": "pushing"}})

    async def broadcast(self, frame: dict) -> None:
        await self.channel_layer.group_send(EVERYONE, {"type": "echo.push", "message": self.message(frame)})
        await self.send_json({"type": "result", "for": "broadcast", "request_id": frame.get("request_id"),
                              "result": {"counts": {}}})

    def message(self, frame: dict) -> dict:
        return {"message_id": uuid.uuid4().hex, "sender_id": self.session_id, "payload": frame.get("payload")}

    async def echo_push(self, event: dict) -> None:
        if event["message"]["sender_id"] != self.session_id:  # a broadcast skips its sender, as the broker's does
            await self.send_json({"type": "message", "message": event["message"]})

    async def disconnect(self, code):
        if self.session_id:
            await self.channel_layer.group_discard(session_group(self.session_id), self.channel_name)
            await self.channel_layer.group_discard(EVERYONE, self.channel_name)


async def healthz(scope, receive, send):
    """/healthz (any path, in fact) answers 200, so devtools.live.wait_until_healthy works on this server too."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"status": "ok"}'})


async def lifespan(scope, receive, send):
    """Answered and ignored (daphne sends no lifespan events; uvicorn and granian do)."""
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


application = ProtocolTypeRouter({
    "http": healthz,
    "lifespan": lifespan,
    "websocket": URLRouter([path("ws/sessions/", EchoConsumer.as_asgi())]),
})
