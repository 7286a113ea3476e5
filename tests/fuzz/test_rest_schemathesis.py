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

from devtools.fuzz_target import FuzzTarget, hostile_body_calls, rest_case_call
from devtools.fuzzing import server_error
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




def test_hostile_bodies_are_refused_cleanly(fuzz_broker: FuzzTarget, api_operations: list):
    failures = []
    for operation in api_operations:
        for sent, status, text in hostile_body_calls(fuzz_broker, operation):
            if server_error(status, text):
                failures.append(f"{sent}: {status} {text[:200]}")
    assert not failures, "\n".join(failures)
