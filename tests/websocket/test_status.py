"""set_status on a WebSocket: the session says what it is doing; its peers hear it and list_sessions shows it."""


async def test_a_status_frame_is_told_to_peers_and_listed(live_broker):
    async with live_broker.connect(name="ws-worker") as worker, live_broker.connect(name="ws-lead") as lead:
        answer = await worker.request({"type": "set_status", "summary": "fixing the login page", "state": "working"})
        assert answer["type"] == "result" and answer["for"] == "set_status"
        assert answer["result"]["activity"]["summary"] == "fixing the login page"
        told = await lead.next("session_status", session_id=worker.session_id)
        assert told["name"] == "ws-worker"
        assert told["activity"]["state"] == "working" and told["activity"]["summary"] == "fixing the login page"
        with live_broker.rest() as rest:
            listed = rest.get("/api/v1/sessions/").json()["sessions"]
        [mine] = [s for s in listed if s["session_id"] == worker.session_id]
        assert mine["activity"]["state"] == "working"


async def test_a_status_with_an_unknown_state_or_a_long_summary_is_refused(live_broker):
    async with live_broker.connect(name="ws-sloppy") as client:
        bad = await client.request({"type": "set_status", "summary": "x", "state": "napping"})
        assert bad["type"] == "error" and bad["error"] == "validation_error"
        long = await client.request({"type": "set_status", "summary": "x" * 201})
        assert long["type"] == "error" and long["error"] == "validation_error"
        fine = await client.request({"type": "set_status", "summary": "still here", "state": "idle"})
        assert fine["result"]["activity"]["state"] == "idle"
