"""Discovering protocols: filters, shared protocols from other projects, and project boundaries."""

import pytest

from protocols import selectors
from tests.protocols.conftest import assert_error, register


@pytest.fixture
def catalogue(alpha):
    client = alpha.client()
    for name, version, tags in [("chat", "1.0.0", ["text"]), ("chat", "1.2.0", ["text", "stable"]),
                                ("chat", "1.10.0", ["text"]), ("chat", "2.0.0", ["text", "stable"]),
                                ("task_result", "0.1.0", ["stable"])]:
        assert register(client, name=name, version=version, tags=tags).status_code == 201
    return client


def listed(client, query: str = "") -> list[tuple[str, str]]:
    response = client.get(f"/api/v1/protocols/{query}")
    assert response.status_code == 200, response.json()
    return [(p["name"], p["version"]) for p in response.json()["protocols"]]


def test_discover_lists_own_protocols_in_numeric_version_order(catalogue):
    assert listed(catalogue) == [("chat", "1.0.0"), ("chat", "1.2.0"), ("chat", "1.10.0"), ("chat", "2.0.0"),
                                 ("task_result", "0.1.0")]


def test_discover_by_name(catalogue):
    assert {name for name, _ in listed(catalogue, "?name=task_result")} == {"task_result"}


def test_discover_by_range_includes_1x_and_excludes_2_0_0(catalogue):
    found = listed(catalogue, "?name=chat&version_range=%3E%3D1.0.0,%3C2.0.0")
    assert found == [("chat", "1.0.0"), ("chat", "1.2.0"), ("chat", "1.10.0")]
    assert listed(catalogue, "?version_range=1.2.0") == [("chat", "1.2.0")]
    assert listed(catalogue, "?name=chat&version_range=!%3D1.0.0,%3C=1.10.0") == [("chat", "1.2.0"),
                                                                                  ("chat", "1.10.0")]


def test_discover_by_tags_needs_all_of_them(catalogue):
    assert listed(catalogue, "?tags=stable") == [("chat", "1.2.0"), ("chat", "2.0.0"), ("task_result", "0.1.0")]
    assert listed(catalogue, "?tags=text,stable") == [("chat", "1.2.0"), ("chat", "2.0.0")]


@pytest.mark.parametrize("bad_range", ["~>1", ">=1.0", "=>1.0.0", ">=1.0.0,", "1.0.0-beta..", "^1.0.0", "x" * 201])
def test_invalid_ranges_are_refused(catalogue, bad_range):
    response = catalogue.get("/api/v1/protocols/", {"version_range": bad_range})
    details = assert_error(response, 400, "validation_error")
    assert details["field"] == "version_range"
    assert "constraint" in details


def test_nothing_found_is_an_empty_list_with_a_message(catalogue):
    body = catalogue.get("/api/v1/protocols/?name=nothing_here").json()
    assert body["protocols"] == [] and body["count"] == 0
    assert "No protocols" in body["message"]


def test_other_project_cannot_see_unshared_protocols(catalogue, beta):
    body = beta.client().get("/api/v1/protocols/?include_shared=true").json()
    assert body["protocols"] == [] and body["count"] == 0
    assert_error(beta.client().get("/api/v1/protocols/chat/1.0.0/?include_shared=true"), 404, "not_found")


def test_include_shared_shows_other_projects_shared_protocol_read_only(alpha, beta):
    assert register(alpha.client(), name="status_ping", shared=True).status_code == 201
    assert register(alpha.client(), name="private_notes").status_code == 201
    assert register(beta.client(), name="beta_own").status_code == 201

    assert listed(beta.client()) == [("beta_own", "1.0.0")]
    body = beta.client().get("/api/v1/protocols/?include_shared=true").json()
    by_name = {p["name"]: p for p in body["protocols"]}
    assert set(by_name) == {"beta_own", "status_ping"}
    shared = by_name["status_ping"]
    assert shared["read_only"] is True
    assert shared["source_project"] == "alpha"
    assert shared["project_id"] == "alpha"
    assert by_name["beta_own"]["read_only"] is False
    detail = beta.client().get("/api/v1/protocols/status_ping/1.0.0/?include_shared=true").json()
    assert detail["read_only"] is True and detail["source_project"] == "alpha"
    # The owner sees its own shared protocol as writable.
    own = alpha.client().get("/api/v1/protocols/status_ping/1.0.0/").json()
    assert own["read_only"] is False and "source_project" not in own


def test_other_project_cannot_delete_or_overwrite_a_shared_protocol(alpha, beta):
    assert register(alpha.client(), name="status_ping", shared=True).status_code == 201
    assert_error(beta.admin().delete("/api/v1/protocols/status_ping/1.0.0/"), 404, "not_found")
    # Registering the same name and version in beta creates beta's own; alpha's is untouched.
    assert register(beta.admin(), name="status_ping", schema={"type": "object"}).status_code == 201
    alpha_view = alpha.client().get("/api/v1/protocols/status_ping/1.0.0/").json()
    assert alpha_view["schema"]["required"] == ["text"]
    both = beta.client().get("/api/v1/protocols/?name=status_ping&include_shared=true").json()["protocols"]
    assert [(p["project_id"], p["read_only"]) for p in both] == [("beta", False), ("alpha", True)]


def test_inactive_projects_shared_protocols_are_not_discovered(alpha, beta, operator_key):
    from tests.conftest import api_client

    register(alpha.client(), name="status_ping", shared=True)
    api_client(operator_key).post("/api/v1/projects/alpha/deactivate/")
    assert beta.client().get("/api/v1/protocols/?include_shared=true").json()["count"] == 0


def test_unknown_protocol_is_not_found(alpha):
    details = assert_error(alpha.client().get("/api/v1/protocols/chat/9.9.9/"), 404, "not_found")
    assert details == {"name": "chat", "version": "9.9.9"}


def test_requests_without_a_key_are_unauthorized(db):
    from tests.conftest import api_client

    assert_error(api_client(None).get("/api/v1/protocols/"), 401, "unauthorized")


def test_discover_pages_in_order_without_repeats(catalogue):
    first = catalogue.get("/api/v1/protocols/", {"limit": 2}).json()
    assert [(p["name"], p["version"]) for p in first["protocols"]] == [("chat", "1.0.0"), ("chat", "1.2.0")]
    seen, offset = [], 0
    while offset is not None:
        page = catalogue.get("/api/v1/protocols/", {"limit": 2, "offset": offset, "tags": "text"}).json()
        seen += [(p["name"], p["version"]) for p in page["protocols"]]
        offset = page["next_offset"]
    assert seen == [("chat", "1.0.0"), ("chat", "1.2.0"), ("chat", "1.10.0"), ("chat", "2.0.0")]
    assert catalogue.get("/api/v1/protocols/", {"limit": 51}).status_code == 400


def test_another_tenants_huge_shared_catalogue_is_read_only_a_page_and_a_bounded_scan_at_a_time(
        alpha, beta, monkeypatch):
    for n in range(30):
        assert register(beta.admin(), name=f"spam_{n:02}", version="1.0.0", shared=True).status_code == 201
    page = alpha.client().get("/api/v1/protocols/", {"include_shared": "true", "limit": 5}).json()
    assert [p["name"] for p in page["protocols"]] == [f"spam_{n:02}" for n in range(5)]
    assert page["next_offset"] == 5 and "incomplete" not in page
    # Filters that match nothing would have a discovery read a whole catalogue: it stops at the bound and says so.
    monkeypatch.setattr(selectors, "MAX_SCANNED", 10)
    stopped = alpha.client().get("/api/v1/protocols/", {"include_shared": "true", "tags": "nothing"}).json()
    assert stopped["protocols"] == [] and stopped["incomplete"] is True and "name the protocol" in stopped["message"]
