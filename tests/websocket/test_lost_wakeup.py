"""Mail whose wake-up event never reached the server is still pushed: the keep-alive finds it for every socket at once.

The server here runs on the in-memory layer with its own sweeper off, so a redelivery made by
`manage.py broker_sweep` (another process) sends its event to nobody. Only the keep-alive's
look at waiting mail (routing.live, every 5 s, one statement for all sockets) can wake the
socket; a socket has no timer of its own.
"""

import asyncio
import signal

from devtools.live import keys_made, manage
from routing.live import KEEPALIVE_SECONDS, MAIL_WAITING_SECONDS
from tests.websocket.conftest import LiveBroker, serve


async def test_a_redelivery_made_in_another_process_reaches_the_open_socket(tmp_path):
    server, env = serve(tmp_path, "", "", migrate=False, BROKER_SWEEP_INTERVAL_SECONDS="0")
    [admin_key] = keys_made(env, ["broker_project", "create", "--id", "alpha", "--name", "Alpha"])
    manage(env, "broker_project", "configure", "--id", "alpha", "--set", "ack_timeout=1")
    server.start()
    try:
        broker = LiveBroker(server, admin_key, admin_key, admin_key)
        async with broker.connect() as sender, broker.connect() as recipient:
            await sender.request({"type": "send", "recipient_id": recipient.session_id, "payload": {"n": 1}})
            [first] = await recipient.messages(1)
            await asyncio.sleep(1.5)  # past ack_timeout: due again
            swept = manage(env, "broker_sweep", "--once")
            assert "redelivered=1" in swept
            # Within one keep-alive pass (and the mail's second of waiting), not a socket timer's 15-30 s.
            [again] = await recipient.messages(1, timeout=KEEPALIVE_SECONDS + MAIL_WAITING_SECONDS + 3)
            assert again["message_id"] == first["message_id"]
            assert again["attempts"] == 2
            await recipient.ack([again])
    finally:
        server.stop(signal.SIGTERM)
    assert "Traceback" not in server.log_text()
