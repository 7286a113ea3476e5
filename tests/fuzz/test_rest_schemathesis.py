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

from devtools.fuzz_target import PATH_PARAMETERS, FuzzTarget, rest_case_call
from devtools.fuzzing import nested_text, server_error
from tests.fuzz.conftest import assert_answer_sound, fuzz_settings


@pytest.fixture(scope="module")
def api_operations(fuzz_broker: FuzzTarget) -> list:
    schema = schemathesis.openapi.from_url(f"{fuzz_broker.http_url}/api/schema/?format=json")
    return [result.ok() for result in schema.get_all_operations()]


def test_no_operation_answers_a_server_error(fuzz_broker: FuzzTarget, api_operations: list):
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


def _fuzzer(target: FuzzTarget, cases):
    @fuzz_settings(default_examples=6)
    @given(case=cases, data=st.data())
    def fuzz(case, data) -> None:
        what, status, text = rest_case_call(target, case, data.draw)
        assert_answer_sound(what, status, text)

    return fuzz


# Bodies no generator stumbles on by chance, sent to every operation that takes a body.
HOSTILE_BODIES = {
    "nested 100,000 deep": nested_text(100_000),
    "nested 5,000 deep under a known field": '{"payload": ' + nested_text(5_000) + ', "recipient_id": "fuzz-b"}',
    "not JSON": "{'payload': ",
    "a JSON string": '"hello"',
    "a huge number": '{"ttl": 1' + "0" * 5_000 + "}",
}


def test_hostile_bodies_are_refused_cleanly(fuzz_broker: FuzzTarget, api_operations: list):
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
