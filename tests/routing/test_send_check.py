"""Step 1 of the send engine runs apart from the round: the round addresses and stores what send_check passed.

A payload's validation is work its sender controls; the WebSocket face runs it on a call of
its own before joining the process-wide round, so the round must not run it again.
"""

import dataclasses

import pytest

from broker_site.errors import ValidationFailed
from projects.auth import CLI
from protocols.services import protocol_register
from routing.contracts import BroadcastIn, SendIn
from routing.models import Message
from routing.sending import Accepted, Broadcast, message_send, messages_send, send_check

ROWS = {"type": "object", "properties": {"rows": {"type": "array", "uniqueItems": True}}, "required": ["rows"]}


def test_send_check_refuses_a_payload_off_its_schema_before_anything_is_stored(alpha):
    protocol_register(alpha.project, CLI, name="rows", version="1.0.0", schema=ROWS)
    (a, _), _ = alpha.connect("a", {"rows": ["1.0.0"]}), alpha.connect("b", {"rows": ["1.0.0"]})
    with pytest.raises(ValidationFailed) as refused:
        send_check(a, SendIn(recipient_id="b", payload={"rows": [1, 1]}, protocol_name="rows"))
    assert refused.value.details["constraint"] == "uniqueItems"
    with pytest.raises(ValidationFailed):
        message_send(a, SendIn(recipient_id="b", payload={"rows": [1, 1]}, protocol_name="rows"))
    assert not Message.objects.exists()


def test_the_round_stores_what_send_check_passed_without_validating_it_again(alpha):
    protocol_register(alpha.project, CLI, name="rows", version="1.0.0", schema=ROWS)
    (a, _), _, _ = (alpha.connect("a", {"rows": ["1.0.0"]}), alpha.connect("b", {"rows": ["1.0.0"]}),
                    alpha.connect("c", {"rows": ["1.0.0"]}))
    send = send_check(a, SendIn(recipient_id="b", payload={"rows": [1]}, protocol_name="rows"))
    broadcast = send_check(a, BroadcastIn(payload={"rows": [2]}, protocol_name="rows"))
    assert send.protocol is not None and send.protocol.version == "1.0.0"
    # Were the round to validate again, these payloads (changed after the check) would be refused.
    changed = [dataclasses.replace(r, message=r.message.model_copy(update={"payload": {"rows": [3, 3]}}))
               for r in (send, broadcast)]
    sent, spread = messages_send(changed)
    assert isinstance(sent, Accepted) and isinstance(spread, Broadcast)
    assert spread.as_dict()["counts"]["queued"] == 2
    assert Message.objects.filter(payload={"rows": [3, 3]}).count() == 3
