"""A live broker per fuzz module (the MCP tests' server: daphne on the run's stack, keys made by the
management commands), real ids of project alpha for the fuzzers to aim at, and a canary client of
project beta that must keep getting answers while they run.

How many examples each fuzzer tries: BROKER_FUZZ_EXAMPLES (a small number by default, so the fuzz
part of the suite takes a minute or two per stack; raise it to fuzz harder).
"""

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from devtools.fuzz_target import FuzzTarget, seed
from devtools.fuzzing import Canary, server_error
from tests.mcp.conftest import serve_live_broker

FUZZ_EXAMPLES = int(os.environ.get("BROKER_FUZZ_EXAMPLES", "0") or 0)
# The canary's liveness bound: generous, for a loaded 2-core machine (the benchmark holds it to 1 s).
CANARY_BOUND_SECONDS = 10


def fuzz_settings(default_examples: int) -> settings:
    """Hypothesis settings for a fuzzer against a live server: no deadline (the server's pace is not
    the input's fault), no health checks about slow generation, a fixed derandomized run by default."""
    return settings(max_examples=FUZZ_EXAMPLES or default_examples, deadline=None, derandomize=not FUZZ_EXAMPLES,
                    suppress_health_check=list(HealthCheck), database=None)


@pytest.fixture(scope="package")
def fuzz_broker(tmp_path_factory) -> Iterator[FuzzTarget]:
    """The MCP tests' live server (with its log checked for tracebacks when it stops), seeded, one for
    all the fuzz modules (a server start is a good part of their time); the canary runs throughout."""
    for live in serve_live_broker(tmp_path_factory):
        keys = {"agent": live.agent_key, "admin": live.admin_key, "operator": live.operator_key,
                "beta": live.other_project_key}
        target = seed(FuzzTarget(live.process.http_url, live.process.ws_url, keys, live=live))
        canary = Canary(target.http_url, target.ws_url, keys["beta"]).start()
        try:
            yield target
        finally:
            canary.stop()
        assert_canary_lived(canary)


def assert_canary_lived(canary: Canary) -> None:
    """Every canary call answered, each within the generous bound; its worst latency is printed."""
    print(f"canary: {canary.summary()}")
    assert canary.calls > 0, "the canary never got to ask"
    assert not canary.failures, canary.summary()
    assert canary.worst < CANARY_BOUND_SECONDS, canary.summary()


def assert_answer_sound(what: Any, status: int | None, text: str) -> None:
    """The pass condition for one answer: no 5xx, no internal_error, no traceback text."""
    reason = server_error(status, text)
    assert not reason, f"server error ({reason}) for {what!r}: {text[:500]}"
