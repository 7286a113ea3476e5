"""Links between projects over REST: each side's admin consents, either may pause or end it, outsiders see nothing."""

from projects.links import link_request
from projects.models import ProjectLink
from tests.conftest import api_client

LINKS = "/api/v1/links/"


def test_link_lifecycle_between_two_admins(alpha, beta):
    asked = alpha.admin().post(LINKS, {"target_project_id": "beta", "rate_limit_per_minute": 100,
                                       "allowed_protocols": ["review@>=1.0.0"]}, format="json")
    assert asked.status_code == 201, asked.json()
    link = asked.json()
    assert (link["state"], link["side"], link["other_project_id"]) == ("pending", "source", "beta")
    link_id = link["link_id"]

    incoming = beta.admin().get(LINKS).json()
    assert incoming["count"] == 1
    [seen] = incoming["links"]
    assert (seen["link_id"], seen["side"], seen["state"], seen["other_project_id"]) == (link_id, "target", "pending",
                                                                                          "alpha")

    accepted = beta.admin().post(f"{LINKS}{link_id}/accept/", {"rate_limit_per_minute": 10}, format="json")
    assert accepted.status_code == 200, accepted.json()
    assert (accepted.json()["state"], accepted.json()["rate_limit_per_minute"]) == ("active", 10)

    shown = alpha.admin().get(f"{LINKS}{link_id}/").json()
    assert shown["rate_limit_per_minute"] == 10
    assert shown["requested_terms"]["rate_limit_per_minute"] == 100
    assert shown["allowed_protocols"] == [{"name": "review", "version_range": ">=1.0.0"}]

    suspended = alpha.admin().post(f"{LINKS}{link_id}/suspend/")
    assert (suspended.json()["state"], suspended.json()["suspended_by"]) == ("suspended", "this project")
    assert beta.admin().get(f"{LINKS}{link_id}/").json()["suspended_by"] == "the other project"
    refused = beta.admin().post(f"{LINKS}{link_id}/resume/")
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert alpha.admin().post(f"{LINKS}{link_id}/resume/").json()["state"] == "active"

    revoked = beta.admin().post(f"{LINKS}{link_id}/revoke/")
    assert revoked.status_code == 200
    assert alpha.admin().get(f"{LINKS}{link_id}/").json()["state"] == "revoked"
    assert ProjectLink.objects.get(pk=link_id).state == "revoked"


def test_accept_may_not_widen_the_requested_terms(alpha, beta):
    link_id = alpha.admin().post(LINKS, {"target_project_id": "beta", "rate_limit_per_minute": 10},
                                 format="json").json()["link_id"]
    widened = beta.admin().post(f"{LINKS}{link_id}/accept/", {"rate_limit_per_minute": 11}, format="json")
    assert widened.status_code == 400
    assert "rate_limit_per_minute" in widened.json()["details"]["fields"]
    assert ProjectLink.objects.get(pk=link_id).state == "pending"


def test_agent_keys_can_neither_request_nor_accept(alpha, beta):
    asked = alpha.client().post(LINKS, {"target_project_id": "beta"}, format="json")
    assert asked.status_code == 403
    assert not ProjectLink.objects.exists()
    link_id = alpha.admin().post(LINKS, {"target_project_id": "beta"}, format="json").json()["link_id"]
    accepted = beta.client().post(f"{LINKS}{link_id}/accept/", {}, format="json")
    assert accepted.status_code == 403
    assert ProjectLink.objects.get(pk=link_id).state == "pending"


def test_asking_a_missing_or_hidden_project_answers_alike(alpha, make_tenant):
    make_tenant("hidden")  # exists, not discoverable
    ghost = alpha.admin().post(LINKS, {"target_project_id": "ghost"}, format="json")
    hidden = alpha.admin().post(LINKS, {"target_project_id": "hidden"}, format="json")
    assert ghost.status_code == hidden.status_code == 201

    def shape(answer: dict) -> dict:
        varying = {"link_id", "requested_at", "expires_at", "target_project_id", "other_project_id"}
        return {name: value for name, value in answer.items() if name not in varying}

    assert ghost.json().keys() == hidden.json().keys()
    assert shape(ghost.json()) == shape(hidden.json())


def test_a_project_cannot_read_or_change_a_link_it_is_no_side_of(alpha, beta, make_tenant):
    gamma = make_tenant("gamma")
    link_id = str(link_request(alpha.project, gamma.project.pk, {}).pk)
    assert beta.admin().get(f"{LINKS}{link_id}/").status_code == 404
    assert beta.admin().post(f"{LINKS}{link_id}/revoke/").status_code == 404
    assert beta.admin().post(f"{LINKS}{link_id}/accept/", {}, format="json").status_code == 404
    assert beta.admin().get(LINKS).json()["count"] == 0
    assert ProjectLink.objects.get(pk=link_id).state == "pending"


def test_a_malformed_link_id_is_a_validation_error(alpha):
    answer = alpha.admin().get(f"{LINKS}not-a-uuid/")
    assert answer.status_code == 400
    assert answer.json()["details"]["field"] == "link_id"


def test_unknown_action_is_refused(alpha, beta):
    link_id = str(link_request(alpha.project, "beta", {}).pk)
    answer = alpha.admin().post(f"{LINKS}{link_id}/delete/")
    assert answer.status_code == 400
    assert ProjectLink.objects.get(pk=link_id).state == "pending"


def test_operator_sees_every_link_and_an_admin_may_not_list_them_all(alpha, beta, make_tenant, operator_key):
    make_tenant("gamma")
    first = link_request(alpha.project, "beta", {})
    link_request(beta.project, "gamma", {})
    operator = api_client(operator_key)
    one = operator.get(f"{LINKS}{first.pk}/").json()
    assert (one["source_project_id"], one["target_project_id"]) == ("alpha", "beta") and "side" not in one
    assert operator.get(LINKS).json()["count"] == 0  # the operator's own project is no side of either
    everything = operator.get(LINKS, {"all": "true"}).json()
    assert {(link["source_project_id"], link["target_project_id"]) for link in everything["links"]} == {
        ("alpha", "beta"), ("beta", "gamma")}
    refused = alpha.admin().get(LINKS, {"all": "true"})
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"


def test_list_filters_by_state(alpha, beta, make_tenant):
    make_tenant("gamma")
    first = link_request(alpha.project, "beta", {})
    link_request(alpha.project, "gamma", {})
    beta.admin().post(f"{LINKS}{first.pk}/decline/")
    declined = alpha.admin().get(LINKS, {"state": "declined"}).json()
    assert [link["link_id"] for link in declined["links"]] == [str(first.pk)]
    assert alpha.admin().get(LINKS, {"state": "sideways"}).status_code == 400


def test_the_openapi_schema_describes_the_link_endpoints(db):
    paths = api_client(None).get("/api/schema/", {"format": "json"}).json()["paths"]
    assert {"/api/v1/links/", "/api/v1/links/{link_id}/", "/api/v1/links/{link_id}/accept/",
            "/api/v1/links/{link_id}/{action}/"} <= set(paths)
    assert set(paths["/api/v1/links/"]) >= {"get", "post"}


def test_an_operator_suspends_resumes_and_revokes_a_link_of_other_projects(alpha, beta, make_tenant, operator_key):
    from projects.auth import CLI
    from projects.links import link_accept

    link = link_request(alpha.project, "beta", {}, caller=CLI)
    link_accept(beta.project, str(link.pk), {}, caller=CLI)
    operator = api_client(operator_key)
    suspended = operator.post(f"{LINKS}{link.pk}/suspend/")
    assert suspended.status_code == 200, suspended.json()
    assert (suspended.json()["state"], suspended.json()["suspended_by"]) == ("suspended", "operator")
    # Only the side that suspended may resume: here the operator, not either project.
    assert alpha.admin().post(f"{LINKS}{link.pk}/resume/").status_code == 403
    assert operator.post(f"{LINKS}{link.pk}/resume/").json()["state"] == "active"
    # Declining is the asked project's answer, not an operator's.
    assert operator.post(f"{LINKS}{link.pk}/decline/").status_code == 403
    # An admin of a third project is no side of it, and no operator: it finds no such link.
    assert make_tenant("gamma").admin().post(f"{LINKS}{link.pk}/suspend/").status_code == 404
    assert operator.post(f"{LINKS}{link.pk}/revoke/").json()["state"] == "revoked"
