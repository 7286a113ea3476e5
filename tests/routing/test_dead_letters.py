"""Dead letters: project admins list, inspect, replay and purge them."""

from routing.models import Message


def make_dead_letter(alpha, agent):
    alpha.admin().patch("/api/v1/projects/alpha/", {"max_queue_size": 1}, format="json")
    a, b = agent(alpha, "a"), agent(alpha, "b")
    a.send("b", {"n": 1})
    dead_id = a.send("b", {"n": 2}).json()["details"]["message_id"]
    return a, b, dead_id


def test_admin_lists_inspects_and_replays_a_dead_letter(alpha, agent):
    _, b, dead_id = make_dead_letter(alpha, agent)
    admin = alpha.admin()
    listed = admin.get("/api/v1/dead-letters/").json()
    assert [(d["message_id"], d["dead_reason"]) for d in listed["dead_letters"]] == [(dead_id, "queue_full")]
    assert admin.get(f"/api/v1/dead-letters/{dead_id}/").json()["payload"] == {"n": 2}
    assert admin.post(f"/api/v1/dead-letters/{dead_id}/replay/").status_code == 429  # queue still full
    b.ack([m["message_id"] for m in b.receive()])
    replayed = admin.post(f"/api/v1/dead-letters/{dead_id}/replay/")
    assert replayed.status_code == 200 and replayed.json()["status"] == "queued"
    [again] = b.receive()
    assert (again["message_id"], again["payload"], again["attempts"]) == (dead_id, {"n": 2}, 1)
    assert admin.get("/api/v1/dead-letters/").json()["count"] == 0


def test_purge_deletes_dead_letters(alpha, agent):
    _, _, dead_id = make_dead_letter(alpha, agent)
    assert alpha.admin().post("/api/v1/dead-letters/purge/", {"message_ids": [dead_id]}, format="json") \
        .json() == {"purged": 1}
    assert not Message.objects.filter(pk=dead_id).exists()


def test_agents_and_other_projects_cannot_touch_dead_letters(alpha, beta, agent):
    _, _, dead_id = make_dead_letter(alpha, agent)
    assert alpha.client().get("/api/v1/dead-letters/").status_code == 403
    assert alpha.client().post(f"/api/v1/dead-letters/{dead_id}/replay/").status_code == 403
    assert beta.admin().get(f"/api/v1/dead-letters/{dead_id}/").status_code == 404
    assert beta.admin().post(f"/api/v1/dead-letters/{dead_id}/replay/").status_code == 404
    assert beta.admin().post("/api/v1/dead-letters/purge/", {}, format="json").json() == {"purged": 0}
    assert Message.objects.filter(pk=dead_id, state="dead").exists()
    assert alpha.admin().get("/api/v1/dead-letters/not-an-id/").status_code == 400
