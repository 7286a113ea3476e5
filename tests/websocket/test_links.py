"""A WebSocket `send` names a session of a linked project as project_id/session, and the push carries the
sender's project for the answer."""

import uuid


async def test_send_frame_crosses_an_active_link_and_the_answer_comes_back(live_broker):
    with live_broker.rest(live_broker.admin_key) as alpha, live_broker.rest(live_broker.other_project_key) as beta:
        link = alpha.post("/api/v1/links/", json={"target_project_id": "beta"}).json()
        assert beta.post(f"/api/v1/links/{link['link_id']}/accept/", json={}).json()["state"] == "active"
    name = f"platform-{uuid.uuid4().hex[:6]}"
    try:
        async with live_broker.connect() as front, live_broker.connect(live_broker.other_project_key,
                                                                       name=name) as platform:
            sent = await front.request({"type": "send", "recipient_id": f"beta/{name}", "payload": {"q": 1}})
            assert sent["type"] == "result" and sent["result"]["status"] == "pushing", sent
            [question] = await platform.messages(1)
            assert (question["sender_project_id"], question["sender_id"]) == ("alpha", front.session_id)
            answer = await platform.request({"type": "send", "recipient_id": f"alpha/{front.session_id}",
                                             "payload": {"a": 1}, "reply_to": question["message_id"]})
            assert answer["type"] == "result", answer
            [reply] = await front.messages(1)
            assert reply["reply_to"] == question["message_id"]
    finally:
        with live_broker.rest(live_broker.admin_key) as alpha:
            assert alpha.post(f"/api/v1/links/{link['link_id']}/revoke/").json()["state"] == "revoked"
    async with live_broker.connect() as front:
        refused = await front.request({"type": "send", "recipient_id": f"beta/{name}", "payload": {}})
        assert refused["type"] == "error" and refused["error"] == "project_boundary", refused
