"""Hypothesis-generated WebSocket frames against the live server, with the websockets client:
invalid JSON, JSON that is no frame object, wrong types, unknown types, huge and deeply nested
values, binary frames; before hello (each on a fresh socket) and after it (on a greeted socket,
reopened when the server closes it), with keys of every role.

Pass condition: no error frame says internal_error, no traceback text, no socket dropped without a
close frame (1006) or closed as an internal error (1011); the canary of project beta answered throughout.
"""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devtools.fuzz_target import FuzzTarget
from devtools.fuzzing import LoopThread, WsProber, nested_text, ws_frames
from tests.fuzz.conftest import fuzz_settings


@pytest.fixture(scope="module")
def loop():
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.mark.parametrize("role", ["agent", "admin"])
def test_no_frame_after_hello_gets_a_server_error(fuzz_broker: FuzzTarget, loop: LoopThread, role: str):
    prober = WsProber(fuzz_broker.ws_url, fuzz_broker.key(role), name=f"ws-fuzz-{role}")

    @fuzz_settings(default_examples=40)
    @given(frame=ws_frames(fuzz_broker.known()))
    def fuzz(frame) -> None:
        answer = loop.run(prober.after_hello(frame))
        assert not answer.problem(), f"{answer.problem()} for the frame {frame[:300]!r}"

    try:
        fuzz()
    finally:
        loop.run(prober.close())


def test_no_frame_before_hello_gets_a_server_error(fuzz_broker: FuzzTarget, loop: LoopThread):
    prober = WsProber(fuzz_broker.ws_url, fuzz_broker.key("agent"))
    known = {**fuzz_broker.known(), "project_id": st.sampled_from(["alpha", "beta"])}

    @fuzz_settings(default_examples=25)
    @given(frame=ws_frames(known))
    def fuzz(frame) -> None:
        answer = loop.run(prober.before_hello(frame))
        assert not answer.problem(), f"{answer.problem()} for the frame {frame[:300]!r}"

    fuzz()


@pytest.mark.parametrize("frame", [
    pytest.param(nested_text(100_000), id="nested-100000"),
    pytest.param(json.dumps({"type": "send", "recipient_id": "fuzz-b", "payload": {"s": "a" * (1 << 20)}}),
                 id="over-1MiB"),
    pytest.param(b"\xff" * 1000, id="binary-garbage"),
])
@pytest.mark.parametrize("when", ["before hello", "after hello"])
def test_hostile_frames_are_answered_cleanly(fuzz_broker: FuzzTarget, loop: LoopThread, frame, when: str):
    """Frames no generator stumbles on by chance, once each, before and after hello."""
    prober = WsProber(fuzz_broker.ws_url, fuzz_broker.key("agent"), name="ws-hostile")
    try:
        answer = loop.run(prober.before_hello(frame) if when == "before hello" else prober.after_hello(frame))
    finally:
        loop.run(prober.close())
    assert not answer.problem(), answer
