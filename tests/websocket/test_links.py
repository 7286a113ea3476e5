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


async def test_a_send_frame_refused_by_a_link_kept_in_the_process_is_counted_and_audited_once(live_broker):
    """Step 1 of a send over a link the process keeps runs on the event loop; a refusal goes to a thread of its
    own, which counts and audits it (routing.crossing, in_place)."""
    with live_broker.rest(live_broker.admin_key) as alpha, live_broker.rest(live_broker.other_project_key) as beta:
        link = alpha.post("/api/v1/links/", json={"target_project_id": "beta", "max_message_bytes": 100}).json()
        assert beta.post(f"/api/v1/links/{link['link_id']}/accept/", json={}).json()["state"] == "active"
    name = f"platform-{uuid.uuid4().hex[:6]}"
    try:
        async with live_broker.connect() as front, live_broker.connect(live_broker.other_project_key, name=name):
            for n in range(3):  # the first reads the link, the others find it kept
                sent = await front.request({"type": "send", "recipient_id": f"beta/{name}", "payload": {"n": n}})
                assert sent["type"] == "result", sent
            refused = await front.request({"type": "send", "recipient_id": f"beta/{name}",
                                           "payload": {"text": "x" * 200}})
            assert refused["type"] == "error" and refused["error"] == "payload_too_large", refused
            assert refused["details"]["limit"] == 100, refused
        with live_broker.rest(live_broker.admin_key) as alpha:
            traffic = alpha.get(f"/api/v1/links/{link['link_id']}/").json()["traffic"]
            assert traffic["sent"] == 3 and traffic["refused"]["size"] == 1, traffic
            events = alpha.get("/api/v1/projects/alpha/audit/").json()["events"]
            crossings = [(e["outcome"], e["details"].get("reason")) for e in events
                         if e["action"] == "cross_project_send" and e["details"].get("link_id") == link["link_id"]]
            assert sorted(crossings, key=str) == [("denied", "size")] + [("success", None)] * 3, crossings
    finally:
        with live_broker.rest(live_broker.admin_key) as alpha:
            assert alpha.post(f"/api/v1/links/{link['link_id']}/revoke/").json()["state"] == "revoked"
