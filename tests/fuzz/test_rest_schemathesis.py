"""schemathesis against the broker's own OpenAPI schema, on a live daphne: every operation, with keys
of every role (an operator acting in alpha with X-Project-ID) and, for session calls, a real
X-Session-Token most of the time, so generated input gets past authentication into the logic.
Path parameters are real ids now and then (alpha's and beta's), for the same reason.

Pass condition: no 5xx, no internal_error, no traceback text; the canary of project beta answered
throughout (checked when the module's server stops).
"""

import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode

from devtools.fuzzing import nested_text, server_error
from tests.fuzz.conftest import FuzzBroker, assert_answer_sound, fuzz_settings

# Real values for path parameters, by name: ids of alpha's objects and of beta's.
PATH_PARAMETERS = ("message_id", "ref", "project_id", "key_id", "name", "version")


@pytest.fixture(scope="module")
def api_operations(fuzz_broker: FuzzBroker) -> list:
    schema = schemathesis.openapi.from_url(f"{fuzz_broker.http_url}/api/schema/?format=json")
    return [result.ok() for result in schema.get_all_operations()]


def test_no_operation_answers_a_server_error(fuzz_broker: FuzzBroker, api_operations: list):
    """Each operation in turn (schemathesis' own pytest loader relies on pytest internals that 9.2
    removed, so hypothesis drives its strategies here); every failing operation is reported."""
    assert len(api_operations) >= 30
    failures = {}
    for operation in api_operations:
        cases = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)
        try:
            _fuzzer(fuzz_broker, cases)()
        except Exception as exc:  # collect every operation's failure, then fail once
            failures[operation.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


def _fuzzer(broker: FuzzBroker, cases):
    @fuzz_settings(default_examples=6)
    @given(case=cases, data=st.data())
    def fuzz(case, data) -> None:
        _call(broker, case, data)

    return fuzz


def _call(broker: FuzzBroker, case, data) -> None:
    role = data.draw(st.sampled_from(["agent", "admin", "operator"]), label="role")
    headers = broker.headers(role)
    known = broker.known()
    if _takes_session_token(case) and data.draw(st.integers(0, 4), label="real token") != 0:
        headers["X-Session-Token"] = data.draw(known["session_token"], label="token")
    for name in PATH_PARAMETERS:
        if name in (case.path_parameters or {}) and data.draw(st.booleans(), label=f"real {name}"):
            case.path_parameters[name] = data.draw(_path_value(name, known), label=name)
    response = case.call(headers=headers, timeout=60)
    assert_answer_sound(f"{case.method} {case.formatted_path} as {role}: {case.body!r:.300}",
                        response.status_code, response.text)
    if response.status_code < 300 and (case.method == "PATCH" or case.path.endswith(("/disconnect/", "/deactivate/"))):
        broker.restore()


def _takes_session_token(case) -> bool:
    return any(p.name == "X-Session-Token" for p in case.operation.headers)


def _path_value(name: str, known: dict) -> st.SearchStrategy:
    if name == "ref":
        return known["session_id"] | known["recipient_id"]
    if name == "version":
        return known["protocol_version"]
    if name == "name":
        return known["protocol_name"]
    if name == "project_id":
        # Not beta: an operator may really deactivate it, and it is the canary's project.
        return st.sampled_from(["alpha", "nope"])
    return known[name]


# Bodies no generator stumbles on by chance, sent to every operation that takes a body.
HOSTILE_BODIES = {
    "nested 100,000 deep": nested_text(100_000),
    "nested 5,000 deep under a known field": '{"payload": ' + nested_text(5_000) + ', "recipient_id": "fuzz-b"}',
    "not JSON": "{'payload': ",
    "a JSON string": '"hello"',
    "a huge number": '{"ttl": 1' + "0" * 5_000 + "}",
}


def test_hostile_bodies_are_refused_cleanly(fuzz_broker: FuzzBroker, api_operations: list):
    failures = []
    for operation in api_operations:
        if operation.body is None or not len(operation.body):
            continue
        path = operation.path
        for name in PATH_PARAMETERS:
            path = path.replace("{" + name + "}", "alpha" if name == "project_id" else "x")
        for role in ("agent", "admin", "operator"):
            headers = {**fuzz_broker.headers(role), "Content-Type": "application/json",
                       "X-Session-Token": fuzz_broker.sessions[0]["token"]}
            with fuzz_broker.rest(role) as rest:
                for label, text in HOSTILE_BODIES.items():
                    response = rest.request(operation.method.upper(), path, content=text, headers=headers)
                    if server_error(response.status_code, response.text):
                        failures.append(f"{operation.method.upper()} {path} as {role}, {label}: "
                                        f"{response.status_code} {response.text[:200]}")
    assert not failures, "\n".join(failures)
