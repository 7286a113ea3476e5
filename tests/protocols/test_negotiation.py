"""Negotiation between sessions and the compatibility matrix, over REST."""

import pytest

from tests.protocols.conftest import assert_error


def negotiate(tenant, body: dict, **headers):
    return tenant.client(**headers).post("/api/v1/negotiate/", body, format="json")


def test_highest_common_version_and_features(alpha):
    alpha.connect("frontend", protocols={"chat": ["1.0.0", "1.1.0", "2.0.0"], "files": ["1.0.0"]},
                  features=["streaming", "markdown", "emoji"])
    alpha.connect("backend", protocols={"chat": ["1.0.0", "1.1.0", "1.10.0"], "jobs": ["3.0.0"]},
                  features=["streaming", "markdown", "retries"])
    response = negotiate(alpha, {"session_id": "frontend", "target_session_id": "backend"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["compatible"] is True
    assert body["supported_protocols"] == {"chat": "1.1.0"}
    assert body["unsupported_protocols"] == ["files", "jobs"]
    assert body["protocols"]["files"]["status"] == "only_a"
    assert body["protocols"]["jobs"]["status"] == "only_b"
    assert body["feature_intersection"] == ["markdown", "streaming"]
    assert body["features_missing"] == {"session_a": ["retries"], "session_b": ["emoji"]}
    assert body["missing_required"] == []


def test_numeric_version_order_picks_1_10_over_1_9(alpha):
    alpha.connect("a", protocols={"chat": ["1.9.0", "1.10.0"]})
    alpha.connect("b", protocols={"chat": ["1.9.0", "1.10.0"]})
    body = negotiate(alpha, {"session_id": "a", "target_session_id": "b"}).json()
    assert body["supported_protocols"] == {"chat": "1.10.0"}


def test_no_common_version_is_incompatible_with_a_suggestion_naming_both(alpha):
    alpha.connect("frontend", protocols={"chat": ["1.0.0"]})
    alpha.connect("backend", protocols={"chat": ["2.0.0"]})
    body = negotiate(alpha, {"session_id": "frontend", "target_session_id": "backend"}).json()
    assert body["compatible"] is False
    assert body["protocols"]["chat"]["status"] == "no_common_version"
    assert body["unsupported_protocols"] == ["chat"]
    assert body["reasons"]
    assert body["suggestions"] == ["session frontend should add chat 2.0.0, or session backend should add chat 1.0.0"]


def test_sessions_without_protocols_are_compatible_for_free_form_messages(alpha):
    alpha.connect("one")
    alpha.connect("two")
    body = negotiate(alpha, {"session_id": "one", "target_session_id": "two"}).json()
    assert body["compatible"] is True and body["free_form_only"] is True


def test_missing_required_protocol_fails_and_names_it(alpha):
    alpha.connect("frontend", protocols={"chat": ["1.0.0", "2.0.0"], "files": ["1.0.0"]})
    alpha.connect("backend", protocols={"chat": ["1.0.0", "2.0.0"]})
    body = negotiate(alpha, {"session_id": "frontend", "target_session_id": "backend",
                             "required_protocols": ["files",
                                                    {"name": "chat", "version_range": ">=1.0.0,<2.0.0"}]}).json()
    assert body["compatible"] is False
    assert [m["name"] for m in body["missing_required"]] == ["files"]
    assert "session backend should add files 1.0.0" in body["suggestions"]
    chat = next(r for r in body["required_protocols"] if r["name"] == "chat")
    assert chat["satisfied"] is True and chat["version"] == "1.0.0"


def test_required_range_no_one_meets_is_missing(alpha):
    alpha.connect("a", protocols={"chat": ["1.0.0"]})
    alpha.connect("b", protocols={"chat": ["1.0.0"]})
    body = negotiate(alpha, {"session_id": "a", "target_session_id": "b",
                             "required_protocols": [{"name": "chat", "version_range": ">=2.0.0"}]}).json()
    assert body["compatible"] is False
    assert body["missing_required"][0]["version_range"] == ">=2.0.0"
    assert body["supported_protocols"] == {"chat": "1.0.0"}


@pytest.mark.parametrize("required", [[{"name": "chat", "version_range": ">=1.0"}], [{"nam": "chat"}], [5], ["Chat-Room"],
                                      "chat"])
def test_bad_required_protocols_are_validation_errors(alpha, required):
    alpha.connect("a")
    alpha.connect("b")
    response = negotiate(alpha, {"session_id": "a", "target_session_id": "b", "required_protocols": required})
    assert_error(response, 400, "validation_error")


def test_source_session_comes_from_the_session_token(alpha):
    _, token = alpha.connect("frontend", protocols={"chat": ["1.0.0"]})
    backend, _ = alpha.connect("backend", protocols={"chat": ["1.0.0"]})
    body = negotiate(alpha, {"target_session_id": str(backend.id)}, HTTP_X_SESSION_TOKEN=token).json()
    assert body["session_a_name"] == "frontend"
    assert body["session_b"] == str(backend.id)
    assert body["compatible"] is True


def test_without_session_id_or_token_it_says_to_connect_first(alpha):
    alpha.connect("backend")
    details = assert_error(negotiate(alpha, {"target_session_id": "backend"}), 401, "unauthorized")
    assert "hint" in details


def test_unknown_sessions_are_not_found(alpha):
    alpha.connect("frontend")
    assert_error(negotiate(alpha, {"session_id": "frontend", "target_session_id": "nobody"}), 404, "not_found")
    assert_error(negotiate(alpha, {"session_id": "frontend",
                                   "target_session_id": "6f1c2a34-8d0e-4b7a-9a51-0c2f3e4d5b6a"}), 404, "not_found")


def test_other_projects_key_cannot_negotiate_its_sessions(alpha, beta):
    alpha.connect("frontend")
    backend, _ = alpha.connect("backend")
    beta.connect("mine")
    response = negotiate(beta, {"session_id": "mine", "target_session_id": str(backend.id)})
    assert_error(response, 404, "not_found")
    matrix = beta.client().post("/api/v1/negotiate/matrix/", {"session_ids": ["frontend", "backend"]}, format="json")
    assert_error(matrix, 404, "not_found")


def test_missing_and_unknown_fields_are_named(alpha):
    unknown = assert_error(negotiate(alpha, {"target": "x"}), 400, "validation_error")["fields"]
    assert unknown == {"target": ["unknown field"], "target_session_id": ["Field required"]}
    missing = assert_error(negotiate(alpha, {}), 400, "validation_error")["fields"]
    assert "target_session_id" in missing
    wrong = assert_error(negotiate(alpha, {"target_session_id": ["a"]}), 400, "validation_error")["fields"]
    assert "target_session_id" in wrong


def test_matrix_over_three_sessions(alpha):
    a, _ = alpha.connect("a", protocols={"chat": ["1.0.0"]})
    alpha.connect("b", protocols={"chat": ["1.0.0", "2.0.0"]})
    alpha.connect("c", protocols={"chat": ["2.0.0"]})
    response = alpha.client().post("/api/v1/negotiate/matrix/", {"session_ids": [str(a.id), "b", "c"]},
                                   format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert len(body["sessions"]) == 3 and len(body["pairs"]) == 3
    assert body["compatible_pairs"] == 2
    by_names = {(body["session_names"][p["session_a"]], body["session_names"][p["session_b"]]): p
                for p in body["pairs"]}
    assert by_names[("a", "b")]["supported_protocols"] == {"chat": "1.0.0"}
    assert by_names[("b", "c")]["supported_protocols"] == {"chat": "2.0.0"}
    assert by_names[("a", "c")]["compatible"] is False


def test_matrix_defaults_to_live_sessions(alpha):
    from sessions_app.services import session_disconnect

    alpha.connect("a")
    alpha.connect("b")
    gone, _ = alpha.connect("gone")
    session_disconnect(gone)
    body = alpha.client().post("/api/v1/negotiate/matrix/", {}, format="json").json()
    assert len(body["sessions"]) == 2 and body["compatible_pairs"] == 1


def test_matrix_size_limits(alpha):
    alpha.connect("a")
    client = alpha.client()
    assert_error(client.post("/api/v1/negotiate/matrix/", {}, format="json"), 400, "validation_error")
    assert_error(client.post("/api/v1/negotiate/matrix/", {"session_ids": ["a"]}, format="json"),
                 400, "validation_error")
    assert_error(client.post("/api/v1/negotiate/matrix/", {"session_ids": ["a"] * 51}, format="json"),
                 400, "validation_error")
    assert_error(client.post("/api/v1/negotiate/matrix/", {"session_ids": ["a", "a"]}, format="json"),
                 400, "validation_error")


def test_required_protocol_may_name_an_exact_version(alpha):
    alpha.connect("a", protocols={"file_transfer": ["2.0.0", "2.1.0"]})
    alpha.connect("b", protocols={"file_transfer": ["2.1.0", "3.0.0"]})
    body = negotiate(alpha, {"session_id": "a", "target_session_id": "b",
                             "required_protocols": [{"name": "file_transfer", "version": "2.1.0"}]}).json()
    assert body["compatible"] is True
    assert body["required_protocols"][0] == {"name": "file_transfer", "version_range": "==2.1.0",
                                                  "satisfied": True, "version": "2.1.0"}
    missing = negotiate(alpha, {"session_id": "a", "target_session_id": "b",
                                "required_protocols": [{"name": "file_transfer", "version": "2.0.0"}]}).json()
    assert missing["compatible"] is False
    assert missing["missing_required"][0]["reason"] == \
        "Required protocol file_transfer ==2.0.0 is not supported by session b."


@pytest.mark.parametrize("version", ["2.1", ">=2.0.0", "2.1.0-beta", 210, ""])
def test_a_required_version_that_is_not_one_version_names_the_field(alpha, version):
    alpha.connect("a")
    alpha.connect("b")
    response = negotiate(alpha, {"session_id": "a", "target_session_id": "b",
                                 "required_protocols": ["chat", {"name": "file_transfer", "version": version}]})
    assert assert_error(response, 400, "validation_error")["field"] == "required_protocols[1].version"


def test_a_required_version_and_version_range_together_are_refused_naming_both(alpha):
    alpha.connect("a")
    alpha.connect("b")
    response = negotiate(alpha, {"session_id": "a", "target_session_id": "b", "required_protocols": [
        {"name": "chat", "version": "1.0.0", "version_range": ">=1.0.0"}]})
    details = assert_error(response, 400, "validation_error")
    assert set(details["fields"]) == {"required_protocols[0].version", "required_protocols[0].version_range"}
    assert "version" in response.json()["message"] and "version_range" in response.json()["message"]
