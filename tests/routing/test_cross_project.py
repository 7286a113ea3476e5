"""Messages across an active link go through the one send engine with every guarantee; every other attempt
is refused as a project boundary, counted on the link and audited."""

import uuid

import pytest

from projects.auth import CLI
from projects.links import link_accept, link_manage, link_request, traffic_flushed
from projects.models import AuditEvent, ProjectLink
from routing.models import Message


def linked(source, target, **terms) -> ProjectLink:
    accept = terms.pop("accept", {})
    link = link_request(source.project, target.project.pk, terms, caller=CLI)
    return link_accept(target.project, str(link.pk), accept, caller=CLI)


def refusals(link: ProjectLink) -> dict[str, int]:
    traffic_flushed()
    link.refresh_from_db()
    return link.refusals


def test_message_and_reply_cross_an_active_link_and_the_sender_sees_the_receipt(alpha, beta, agent):
    link = linked(alpha, beta)
    asker, platform = agent(alpha, "frontend"), agent(beta, "platform")
    sent = asker.send("beta/platform", {"question": "which port?"}, correlation_id="q1")
    assert sent.status_code == 201, sent.content
    message_id = sent.json()["message_id"]

    [received] = platform.receive()
    assert received["payload"] == {"question": "which port?"}
    assert (received["sender_id"], received["sender_project_id"]) == (str(asker.session.id), "alpha")
    reply = platform.send(f"{received['sender_project_id']}/{received['sender_id']}", {"answer": 8080},
                          reply_to=message_id)
    assert reply.status_code == 201, reply.content
    [answer] = asker.receive()
    assert (answer["payload"], answer["reply_to"], answer["sender_project_id"]) == ({"answer": 8080}, message_id, "beta")

    assert platform.ack([message_id]).json()["acked"] == [message_id]
    receipt = asker.client.get(f"/api/v1/messages/{message_id}/").json()
    assert receipt["state"] == "acked"
    # The message sits in the recipient's project: its queue, its limits, its dead letters.
    assert Message.objects.get(pk=message_id).project_id == "beta"
    traffic_flushed()
    link.refresh_from_db()
    assert (link.sent, link.delivered) == (2, 2)
    allowed = AuditEvent.objects.filter(action="cross_project_send", outcome="success")
    assert {(e.source_project, e.target_project) for e in allowed} == {("alpha", "beta"), ("beta", "alpha")}
    assert message_id in {e.details["message_id"] for e in allowed}


def test_target_project_id_names_the_recipients_project(alpha, beta, agent):
    linked(alpha, beta)
    asker, platform = agent(alpha, "frontend"), agent(beta, "platform")
    assert asker.send("platform", target_project_id="beta").status_code == 201
    assert len(platform.receive()) == 1


def test_without_a_link_the_answer_is_the_same_whether_the_session_or_project_exists(alpha, beta, agent):
    asker = agent(alpha, "frontend")
    agent(beta, "platform")
    answers = [asker.send(ref) for ref in ("beta/platform", "beta/nobody", "no-such-project/platform")]
    assert {r.status_code for r in answers} == {403}
    assert len({(r.json()["error"], r.json()["message"]) for r in answers}) == 1
    assert Message.objects.count() == 0
    refused = AuditEvent.objects.filter(action="cross_project_send", outcome="denied")
    assert sorted(e.target_project for e in refused) == ["beta", "beta", "no-such-project"]
    assert {e.details["reason"] for e in refused} == {"no_link"}


@pytest.mark.parametrize("stop", ["pending", "declined", "suspended", "revoked", "expired"])
def test_a_link_that_is_not_active_carries_nothing(alpha, beta, agent, stop):
    asker, platform = agent(alpha, "frontend"), agent(beta, "platform")
    link = link_request(alpha.project, "beta", {}, caller=CLI)
    if stop == "declined":
        link_manage(beta.project, str(link.pk), "decline", caller=CLI)
    elif stop == "expired":
        ProjectLink.objects.filter(pk=link.pk).update(state="expired")
    elif stop != "pending":
        link_accept(beta.project, str(link.pk), {}, caller=CLI)
        assert asker.send("beta/platform").status_code == 201
        link_manage(beta.project, str(link.pk), "suspend" if stop == "suspended" else "revoke", caller=CLI)
    response = asker.send("beta/platform")
    assert response.status_code == 403 and response.json()["error"] == "project_boundary"
    # Accepted before the link stopped: still delivered. Nothing accepted is lost.
    assert len(platform.receive()) == (0 if stop in ("pending", "declined", "expired") else 1)
    [denied] = AuditEvent.objects.filter(action="cross_project_send", outcome="denied")
    # Counted on the link that is not serving, and audited with it, so both projects see what it refused.
    assert (denied.details["reason"], denied.details["link_id"]) == ("inactive", str(link.pk))
    assert refusals(link)["inactive"] == 1


def test_link_terms_refuse_with_their_reason_and_count_it(alpha, beta, agent):
    alpha.admin().post("/api/v1/protocols/", {"name": "ask", "version": "1.0.0", "schema": {}}, format="json")
    alpha.admin().post("/api/v1/protocols/", {"name": "ask", "version": "2.0.0", "schema": {}}, format="json")
    link = linked(alpha, beta, allowed_protocols=["ask@<2.0.0"], max_message_bytes=2048, rate_limit_per_minute=3)
    asker = agent(alpha, "frontend", protocols={"ask": ["1.0.0", "2.0.0"]})
    agent(beta, "platform", protocols={"ask": ["1.0.0", "2.0.0"]})

    free_form = asker.send("beta/platform")
    assert free_form.status_code == 403 and free_form.json()["details"]["reason"] == "protocol"
    too_new = asker.send("beta/platform", protocol_name="ask", protocol_version="2.0.0")
    assert too_new.json()["details"]["reason"] == "protocol"
    too_big = asker.send("beta/platform", {"text": "x" * 3000}, protocol_name="ask", protocol_version="1.0.0")
    assert too_big.status_code == 413 and too_big.json()["details"]["limit"] == 2048
    for _ in range(3):
        assert asker.send("beta/platform", protocol_name="ask", protocol_version="1.0.0").status_code == 201
    over = asker.send("beta/platform", protocol_name="ask", protocol_version="1.0.0")
    assert over.status_code == 429 and over.json()["error"] == "rate_limited"
    assert over.json()["details"]["retry_after"] >= 1

    assert refusals(link) == {"inactive": 0, "direction": 0, "protocol": 2, "size": 1, "rate": 1}
    reasons = sorted(e.details["reason"] for e in AuditEvent.objects.filter(action="cross_project_send",
                                                                           outcome="denied"))
    assert reasons == ["protocol", "protocol", "rate", "size"]


def test_a_one_way_link_lets_the_target_only_answer(alpha, beta, agent):
    link = linked(alpha, beta, direction="source_to_target")
    asker, platform = agent(alpha, "frontend"), agent(beta, "platform")
    unasked = platform.send("alpha/frontend")
    assert unasked.status_code == 403 and unasked.json()["details"]["reason"] == "direction"
    question = asker.send("beta/platform").json()["message_id"]
    platform.receive()
    assert platform.send("alpha/frontend", reply_to=question).status_code == 201
    assert refusals(link)["direction"] == 1


def test_a_session_of_the_target_project_named_by_id_alone_stays_out_of_reach(alpha, beta, agent):
    linked(alpha, beta)
    asker, platform = agent(alpha, "frontend"), agent(beta, "platform")
    assert asker.send(str(platform.session.id)).status_code == 404
    assert asker.send(f"beta/{platform.session.id}").status_code == 201


def test_a_deleted_project_takes_its_links_with_it(alpha, beta, agent, make_tenant):
    from routing.lifecycle import project_delete
    linked(alpha, beta)
    project_delete(beta.project)
    stranger = make_tenant("beta", name="Someone else")
    agent(stranger, "platform")
    assert agent(alpha, "frontend").send("beta/platform").status_code == 403
    assert not ProjectLink.objects.filter(target_project_id="beta").exists()


def test_a_target_project_deactivated_while_a_process_keeps_its_link_is_refused_in_the_round(alpha, beta, agent):
    from routing.lifecycle import project_deactivate

    link = linked(alpha, beta)
    asker, _ = agent(alpha, "frontend"), agent(beta, "platform")
    assert asker.send("beta/platform").status_code == 201  # the link is now kept by this process
    project_deactivate(beta.project, caller=CLI)
    refused = asker.send("beta/platform")
    assert (refused.status_code, refused.json()["details"].get("reason")) == (403, "inactive")
    # Forgotten once refused: the next send reads afresh and finds no project to reach.
    again = asker.send("beta/platform")
    assert (again.status_code, again.json()["error"]) == (403, "project_boundary")
    assert "reason" not in again.json()["details"]
    assert Message.objects.filter(link=link).count() == 1


def test_traffic_counts_reach_the_link_within_a_second_without_a_reader(alpha, beta, agent, monkeypatch):
    from projects import links

    link = linked(alpha, beta)
    asker, platform = agent(alpha, "frontend"), agent(beta, "platform")
    monkeypatch.setattr(links, "TRAFFIC_FLUSH_SECONDS", 3600)
    links.traffic_flushed()
    assert asker.send("beta/platform").status_code == 201
    link.refresh_from_db()
    assert link.sent == 0  # waiting in the process for the next write
    monkeypatch.setattr(links, "TRAFFIC_FLUSH_SECONDS", 0)  # that second has passed
    platform.receive()
    link.refresh_from_db()
    assert (link.sent, link.delivered) == (1, 1)


def test_a_links_rate_is_one_window_for_every_process_sharing_the_cache():
    """Two processes' shares of one link's window (the shared cache: Redis in the PostgreSQL + Redis pass)
    grant the limit between them, exactly, a chunk at a time."""
    from projects.ratelimit import WindowShare

    prefix = f"linkrate:test-{uuid.uuid4()}:alpha"
    here, there = WindowShare(prefix), WindowShare(prefix)
    granted = sum(share.take_now(120) for _ in range(150) for share in (here, there))
    assert granted == 120
    assert not here.take_now(120) and not there.take_now(120)
    # The other direction is a window of its own.
    assert WindowShare(prefix.replace(":alpha", ":beta")).take_now(120)


def test_a_claim_put_back_unseen_is_not_counted_as_a_delivery(alpha, beta, agent):
    from routing.services import messages_claim, messages_unclaim

    link = linked(alpha, beta)
    asker, platform = agent(alpha, "frontend"), agent(beta, "platform")
    assert asker.send("beta/platform").status_code == 201
    claimed = messages_claim(platform.session)
    assert messages_unclaim(platform.session, claimed) == 1  # the client went before it was answered
    assert len(platform.receive()) == 1
    traffic_flushed()
    link.refresh_from_db()
    assert link.delivered == 1


def test_a_send_to_no_session_over_a_link_revoked_meanwhile_is_refused_as_inactive(alpha, beta, agent):
    """The round reads the link with its recipients; with no recipient found it reads the link alone: no such
    session while the link serves, the link's refusal once it does not."""
    link = linked(alpha, beta)
    asker, _ = agent(alpha, "frontend"), agent(beta, "platform")
    assert asker.send("beta/platform").status_code == 201  # the link is now kept by this process
    missing = asker.send("beta/nobody")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found"), missing.json()
    link_manage(beta.project, str(link.pk), "revoke", caller=CLI)
    refused = asker.send("beta/nobody")
    assert (refused.status_code, refused.json()["details"].get("reason")) == (403, "inactive"), refused.json()


def test_a_round_larger_than_one_insert_stores_and_audits_every_message_across(alpha, beta):
    """SQLite takes a few dozen rows a statement (rows_inserted batches them); PostgreSQL takes them all in one, the
    audit events in the messages' statement."""
    from routing.contracts import SendIn
    from routing.sending import messages_send, send_check

    linked(alpha, beta, rate_limit_per_minute=10_000)
    sender, _ = alpha.connect("sender")
    alpha.connect("inside")
    for n in range(3):
        beta.connect(f"platform-{n}")
    requests = [send_check(sender, SendIn(recipient_id=f"beta/platform-{n % 3}" if n % 4 else "inside",
                                          payload={"n": n})) for n in range(90)]
    outcomes = messages_send(requests)
    ids = {str(o.message.id) for o in outcomes}
    across = {str(o.message.id) for o in outcomes if o.message.link_id is not None}
    assert len(ids) == 90 and len(across) == 67
    assert {str(pk) for pk in Message.objects.values_list("pk", flat=True)} == ids
    audited = AuditEvent.objects.filter(action="cross_project_send", outcome="success")
    assert sorted(e.details["message_id"] for e in audited) == sorted(across)
