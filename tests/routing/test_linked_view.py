"""What a linked project may see and do before it sends: list the other's live sessions (as much as that
project shows), discover the protocols the link allows, negotiate across it; a message's version converted
as inside a project; the link's traffic in project info; requests that time out."""

from datetime import timedelta

import pytest
from django.utils import timezone

from broker_site.sweeper import sweep_pass
from projects.auth import CLI
from projects.links import link_accept, link_manage, link_request
from projects.models import ProjectLink
from projects.services import project_update
from protocols.services import adapter_register, protocol_register
from tests.routing.test_cross_project import linked

REVIEW = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}


def sessions_of(tenant, project_id, **query):
    return tenant.client().get("/api/v1/sessions/", {"project_id": project_id, **query})


def test_a_linked_project_lists_the_others_live_sessions_by_name_and_capabilities(alpha, beta, agent):
    link = linked(alpha, beta)
    agent(beta, "platform", protocols={"review": ["1.0.0"]}, features=["streaming"])
    gone = agent(beta, "gone")
    assert gone.client.post("/api/v1/sessions/me/disconnect/").status_code == 200

    listed = sessions_of(alpha, "beta")
    assert listed.status_code == 200, listed.content
    body = listed.json()
    assert (body["project_id"], body["link_id"], body["visibility"]) == ("beta", str(link.pk), "capabilities")
    [platform] = body["sessions"]
    assert platform["name"] == "platform"
    assert platform["capabilities"] == {"supported_protocols": {"review": ["1.0.0"]},
                                        "supported_features": ["streaming"]}
    # Names and capabilities only: no presence details cross the link.
    assert set(platform) == {"session_id", "name", "capabilities"}


@pytest.mark.parametrize(("visibility", "shown"), [("names", {"session_id", "name"}), ("none", None)])
def test_the_listed_project_chooses_how_much_linked_projects_see(alpha, beta, agent, visibility, shown):
    linked(alpha, beta)
    agent(beta, "platform", protocols={"review": ["1.0.0"]})
    project_update(beta.project, {"link_visibility": visibility}, caller=CLI)
    body = sessions_of(alpha, "beta").json()
    assert body["visibility"] == visibility
    if shown is None:
        assert body["sessions"] == []
    else:
        assert [set(s) for s in body["sessions"]] == [shown]


def test_a_project_without_a_link_it_may_start_over_sees_nothing_and_learns_nothing(alpha, beta, agent):
    agent(beta, "platform")
    no_link = sessions_of(alpha, "beta")
    nobody = sessions_of(alpha, "no-such-project")
    assert (no_link.status_code, nobody.status_code) == (403, 403)
    def answer(response):
        return response.json()["error"], response.json()["message"]

    assert answer(no_link) == answer(nobody)
    assert answer(no_link)[0] == "project_boundary"

    # A pending request is not consent; a one-way link lets its target side answer only.
    request = link_request(alpha.project, "beta", {"direction": "source_to_target"}, caller=CLI)
    assert answer(sessions_of(alpha, "beta")) == answer(no_link)
    link_accept(beta.project, str(request.pk), {}, caller=CLI)
    agent(alpha, "frontend")
    assert [s["name"] for s in sessions_of(alpha, "beta").json()["sessions"]] == ["platform"]
    assert sessions_of(beta, "alpha").status_code == 403


def test_another_projects_disconnected_sessions_cannot_be_asked_for(alpha, beta):
    linked(alpha, beta)
    refused = sessions_of(alpha, "beta", status_filter="all")
    assert refused.status_code == 400
    assert refused.json()["details"]["field"] == "status_filter"


def test_discovery_shows_a_linked_projects_protocols_the_link_allows(alpha, beta):
    for name in ("review", "secret"):
        protocol_register(beta.project, CLI, name=name, version="1.0.0", schema=REVIEW)
    link = linked(alpha, beta, allowed_protocols=["review"])

    def discovered(**query):
        return alpha.client().get("/api/v1/protocols/", query).json()["protocols"]

    assert discovered() == []
    [review] = discovered(include_linked="true")
    assert (review["name"], review["project_id"], review["link_id"], review["read_only"]) == (
        "review", "beta", str(link.pk), True)
    assert review["schema"] == REVIEW
    link_manage(alpha.project, str(link.pk), "revoke", caller=CLI)
    assert discovered(include_linked="true") == []


def negotiate(agent_, target, **extra):
    return agent_.client.post("/api/v1/negotiate/", {"target_session_id": target, **extra}, format="json")


def test_negotiation_across_a_link_counts_only_what_the_link_allows(alpha, beta, agent):
    linked(alpha, beta, allowed_protocols=["review@<2.0.0"])
    asker = agent(alpha, "frontend", protocols={"review": ["1.0.0", "2.0.0"], "secret": ["1.0.0"]})
    agent(beta, "platform", protocols={"review": ["1.0.0", "2.0.0"], "secret": ["1.0.0"]})
    answer = negotiate(asker, "beta/platform")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["compatible"] is True
    assert body["supported_protocols"] == {"review": "1.0.0"}
    assert body["not_allowed_by_link"] == {"review": ["2.0.0"], "secret": ["1.0.0"]}
    assert body["target_project_id"] == "beta"

    # Nothing the link allows in common: not compatible, and free-form would not cross either.
    asker_new = agent(alpha, "newer", protocols={"review": ["2.0.0"]})
    body = negotiate(asker_new, "beta/platform").json()
    assert body["compatible"] is False
    assert "free_form_only" not in body


def test_negotiation_across_needs_the_other_project_to_show_capabilities(alpha, beta, agent):
    linked(alpha, beta)
    asker = agent(alpha, "frontend")
    agent(beta, "platform")
    project_update(beta.project, {"link_visibility": "names"}, caller=CLI)
    refused = negotiate(asker, "beta/platform")
    assert refused.status_code == 403
    assert refused.json()["details"]["reason"] == "visibility"
    assert negotiate(asker, "gamma/platform").json()["error"] == "project_boundary"


def test_a_message_across_is_converted_to_the_recipients_version_as_inside_a_project(alpha, beta, agent):
    for version in ("1.0.0", "2.0.0"):
        protocol_register(alpha.project, CLI, name="chat", version=version, schema={"type": "object"})
    adapter_register(alpha.project, CLI, protocol_name="chat", from_version="2.0.0", to_version="1.0.0",
                     operations=[{"op": "rename", "from": "body", "to": "text"}])
    linked(alpha, beta, allowed_protocols=["chat"])
    asker = agent(alpha, "frontend", protocols={"chat": ["2.0.0"]})
    platform = agent(beta, "platform", protocols={"chat": ["1.0.0"]})
    sent = asker.send("beta/platform", {"body": "hello"}, protocol_name="chat", protocol_version="2.0.0")
    assert sent.status_code == 201, sent.content
    assert (sent.json()["transformed_from"], sent.json()["transformed_to"]) == ("2.0.0", "1.0.0")
    [received] = platform.receive()
    assert (received["payload"], received["protocol"]) == ({"text": "hello"}, {"name": "chat", "version": "1.0.0"})


def test_project_info_shows_each_live_links_traffic(alpha, beta, agent):
    link = linked(alpha, beta, max_message_bytes=1024)
    asker, platform = agent(alpha, "frontend"), agent(beta, "platform")
    assert asker.send("beta/platform").status_code == 201
    assert asker.send("beta/platform", {"text": "x" * 2000}).status_code == 413
    platform.receive()
    stats = alpha.client().get("/api/v1/projects/alpha/", {"include_stats": "true"}).json()["stats"]
    assert stats["links"]["by_state"] == {"active": 1}
    [live] = stats["links"]["live"]
    assert (live["link_id"], live["other_project_id"], live["sent"], live["delivered"]) == (str(link.pk), "beta", 1, 1)
    assert live["refused"]["size"] == 1


def test_an_unanswered_request_expires_in_the_sweep_and_can_no_longer_be_accepted(alpha, beta):
    request = link_request(alpha.project, "beta", {}, caller=CLI)
    ProjectLink.objects.filter(pk=request.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert sweep_pass()["links_expired"] == 1
    request.refresh_from_db()
    assert request.state == "expired"
    refused = beta.admin().post(f"/api/v1/links/{request.pk}/accept/", {}, format="json")
    assert refused.status_code == 409
    assert refused.json()["details"]["state"] == "expired"
    # The pair is free again: a new request may be made.
    assert link_request(alpha.project, "beta", {}, caller=CLI).state == "pending"


def test_an_accept_after_the_deadline_but_before_the_sweep_finds_the_request_expired(alpha, beta):
    request = link_request(alpha.project, "beta", {}, caller=CLI)
    ProjectLink.objects.filter(pk=request.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    refused = beta.admin().post(f"/api/v1/links/{request.pk}/accept/", {}, format="json")
    assert refused.status_code == 409
    request.refresh_from_db()
    assert request.state == "expired"
