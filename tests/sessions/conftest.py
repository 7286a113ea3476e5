"""Fixtures shared by the session tests."""

import pytest


@pytest.fixture
def pair(alpha, agent):
    """A sender, and a recipient holding one delivered, unacked message (REST clients of project alpha)."""
    sender, recipient = agent(alpha, "sender"), agent(alpha, "recipient")
    message_id = sender.send("recipient").json()["message_id"]
    [received] = recipient.receive()
    assert received["message_id"] == message_id
    return sender, recipient, message_id
