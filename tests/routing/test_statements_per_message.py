"""What one message costs the database when rounds hold one request each: four statements on both databases,
across a project link as inside one (on SQLite, one more INSERT for its audit event).

To send it: find and lock the recipient with its queue size and blocks (routing.statements),
and insert; one to hand it over (claim), one to ack it. A protocol message adds one read of
its protocol. Transaction control (BEGIN, SAVEPOINT, COMMIT) is not counted. A regression here
is a statement added to every message of every face.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from projects.models import AuditEvent
from protocols.services import protocol_register
from routing.contracts import SendIn
from routing.live import sessions_held_renewed
from routing.models import Message
from routing.sending import messages_send, send_check
from routing.services import messages_ack_many, messages_claim_many

CONTROL = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT", "BEGIN", "COMMIT")


def statements(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if not q["sql"].upper().startswith(CONTROL)]


def one_message(sender, recipient, message: SendIn) -> dict[str, list[str]]:
    with CaptureQueriesContext(connection) as send:
        [accepted] = messages_send([send_check(sender, message)])
    with CaptureQueriesContext(connection) as claim:
        [claimed] = messages_claim_many({recipient: 10})[recipient.pk]
    with CaptureQueriesContext(connection) as ack:
        [answer] = messages_ack_many([(recipient, [claimed.id])])
    assert claimed.id == accepted.message.id and answer["acked"] == [str(claimed.id)]
    return {"send": statements(send), "claim": statements(claim), "ack": statements(ack)}


def test_a_free_form_message_costs_four_statements_from_send_to_ack(alpha):
    sender, _ = alpha.connect("sender")
    recipient, _ = alpha.connect("recipient")
    one_message(sender, recipient, SendIn(recipient_id="recipient", payload={"n": 0}))  # first use: nothing cached
    counts = {step: len(sql) for step, sql in
              one_message(sender, recipient, SendIn(recipient_id=str(recipient.pk), payload={"n": 1})).items()}
    assert counts == {"send": 2, "claim": 1, "ack": 1}


@pytest.mark.parametrize("ref", ["name", "id"])
def test_a_protocol_message_adds_only_the_protocol_read(alpha, ref):
    caps = {"chat": ["1.0.0"]}
    protocol_register(alpha.project, name="chat", version="1.0.0",
                      schema={"type": "object", "properties": {"text": {"type": "string"}}})
    sender, _ = alpha.connect("sender", protocols=caps)
    recipient, _ = alpha.connect("recipient", protocols=caps)
    to = "recipient" if ref == "name" else str(recipient.pk)
    message = SendIn(recipient_id=to, payload={"text": "hi"}, protocol_name="chat")
    one_message(sender, recipient, message)
    found = one_message(sender, recipient, message)
    counts = {step: len(sql) for step, sql in found.items()}
    assert counts == {"send": 1 + 2, "claim": 1, "ack": 1}


def test_the_keep_alive_renews_every_held_session_in_one_statement(alpha):
    held = [alpha.connect(f"held-{n}")[0] for n in range(50)]
    with CaptureQueriesContext(connection) as keep_alive:
        renewed = sessions_held_renewed([s.pk for s in held], {"alpha": alpha.project})
    assert set(renewed) == {s.pk for s in held}
    assert len(statements(keep_alive)) == 1


def test_a_message_across_a_link_costs_what_one_inside_costs(alpha, beta, monkeypatch):
    from projects import links
    from tests.routing.test_cross_project import linked

    monkeypatch.setattr(links, "TRAFFIC_FLUSH_SECONDS", 3600)  # counts are written once a second, not per message

    sender, _ = alpha.connect("sender")
    recipient, _ = beta.connect("recipient")
    linked(alpha, beta)
    message = SendIn(recipient_id="beta/recipient", payload={"n": 1})
    one_message(sender, recipient, message)
    found = one_message(sender, recipient, message)
    counts = {step: len(sql) for step, sql in found.items()}
    # The round reads the link's state (which decides) in its recipients' statement, and writes the audit event in
    # its insert's on PostgreSQL (SQLite has no INSERT in a WITH: its own INSERT, in the process, a few µs); step 1
    # reads the link from the process's memory of it, and the traffic counts wait for the next second's write.
    assert counts == {"send": 2 if connection.vendor == "postgresql" else 3, "claim": 1, "ack": 1}
    across = {str(pk) for pk in Message.objects.filter(link__isnull=False).values_list("pk", flat=True)}
    audited = AuditEvent.objects.filter(action="cross_project_send", outcome="success")
    assert len(across) == 2 and sorted(e.details["message_id"] for e in audited) == sorted(across)
