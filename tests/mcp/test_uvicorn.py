"""The /mcp endpoint under uvicorn, which (unlike daphne) sends ASGI lifespan events."""

import signal

import pytest

from devtools.live import ServerCommand
from tests.mcp.conftest import serve_live_broker
from tests.mcp.helpers import InboxUpdates, call


@pytest.fixture(scope="module")
def uvicorn_broker(tmp_path_factory):
    yield from serve_live_broker(tmp_path_factory, ServerCommand("uvicorn"))


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")  # resources/subscribe
async def test_conversation_under_uvicorn_then_sigterm_runs_the_lifespan_shutdown(uvicorn_broker):
    updates = InboxUpdates()
    async with uvicorn_broker.client() as alice, uvicorn_broker.client(message_handler=updates) as bob:
        await call(alice, "connect_session", name="uv-alice")
        inbox_uri = (await call(bob, "connect_session", name="uv-bob"))["inbox"]
        await bob.subscribe_resource(inbox_uri)  # a push listener for the shutdown hooks to end
        sent = await call(alice, "send_message", recipient_id="uv-bob", payload={"hello": "uvicorn"})
        assert await updates.next() == inbox_uri
        inbox = await call(bob, "receive_messages", wait_seconds=5)
        assert [m["message_id"] for m in inbox["messages"]] == [sent["message_id"]]

        # SIGTERM while both clients are still connected, their GET streams open: shutdown must
        # end those streams rather than wait on them (stop() would SIGKILL after 20 s: -9).
        # uvicorn exits by re-raising the signal it caught once its shutdown is complete.
        assert uvicorn_broker.stop() == -signal.SIGTERM
    log = uvicorn_broker.log()
    # uvicorn reports these only when the app answered lifespan.startup.complete and, after the
    # shutdown hooks (inbox push, MCP session manager, ...) ran, lifespan.shutdown.complete.
    assert "Application startup complete." in log
    assert "Application shutdown complete." in log
    assert "Finished server process" in log
    for trouble in ("ERROR:", '"level": "error"', "Traceback", "shutdown hook failed"):
        assert trouble not in log, log[-5000:]
