"""A round's rows as the database keeps them (routing.statements.rows_inserted): every column of every message and
audit event reads back as written, on both databases; on PostgreSQL, one INSERT text whatever the round's size."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection

from projects.models import AuditEvent
from routing.contracts import SendIn
from routing.models import Message
from routing.sending import Accepted, messages_send, send_check
from tests.routing.test_cross_project import linked

PAYLOAD = {"big": 2**70 + 1, "negative": -(2**64), "float": 0.1, "tiny": 1.5e-7, "text": "é \u2028 \U0001f600 \"q\"",
           "nested": {"list": [1, None, True, {"deep": []}]}, "empty": {}}
DEEP: dict = {"end": True}
for _ in range(55):  # near the default nesting limit (64, the request's envelope included)
    DEEP = {"d": DEEP}


def sent(sender, messages: list[SendIn]) -> list[Message]:
    outcomes = messages_send([send_check(sender, m) for m in messages])
    assert all(isinstance(o, Accepted) for o in outcomes), outcomes
    return [o.message for o in outcomes]


def test_every_column_of_a_round_reads_back_as_written(alpha, beta):
    linked(alpha, beta)
    sender, _ = alpha.connect("sender")
    alpha.connect("inside")
    beta.connect("platform")
    thread = uuid.uuid4()
    written = sent(sender, [
        SendIn(recipient_id="inside", payload=PAYLOAD, priority="high", ttl=3600, correlation_id="c-1",
               reply_to="r-1", thread_id=str(thread)),
        SendIn(recipient_id="beta/platform", payload={"n": 1}),
        SendIn(recipient_id="inside", payload=DEEP, priority="low"),
    ])
    assert written[0].expires_at - written[0].created_at == timedelta(seconds=3600)
    assert written[1].link_id is not None and written[1].sender_project == "alpha"
    for message in written:
        stored = Message.objects.get(pk=message.pk)
        for field in Message._meta.concrete_fields:
            assert getattr(stored, field.attname) == getattr(message, field.attname), field.name
    assert Message.objects.get(pk=written[0].pk).payload == PAYLOAD
    assert Message.objects.get(pk=written[2].pk).payload == DEEP
    [event] = AuditEvent.objects.filter(action="cross_project_send")
    assert (event.outcome, event.source_project, event.target_project, event.count, event.remote_addr) == (
        "success", "alpha", "beta", 1, "")
    assert event.details == {"sender": str(sender.pk), "recipient": "platform", "protocol": None,
                             "link_id": str(written[1].link_id), "message_id": str(written[1].pk)}
    assert abs(event.created_at - written[1].created_at) < timedelta(seconds=5)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="psycopg's placeholder split is PostgreSQL's")
def test_on_postgresql_a_round_inserts_with_one_text_whatever_its_size(alpha, beta):
    """psycopg remembers how a statement splits at its placeholders only for a short one of few parameters: rows
    as VALUES made each round's text new, and splitting it cost more than the rest of the round's Python."""
    from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH, MAX_CACHED_STATEMENT_PARAMS

    linked(alpha, beta, rate_limit_per_minute=10_000)
    sender, _ = alpha.connect("sender")
    alpha.connect("inside")
    beta.connect("platform")
    inserts = []

    def kept(execute, sql, params, many, context):
        if sql.lstrip().startswith(("INSERT", "WITH audited")):
            inserts.append((sql, len(params)))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(kept):
        for size in (1, 2, 40):
            sent(sender, [SendIn(recipient_id="beta/platform" if n % 2 else "inside", payload={"n": n})
                          for n in range(size)])
    # The round of 1 has no message across, so no audit event: its own text, once.
    assert len(inserts) == 3 and len({sql for sql, _ in inserts[1:]}) == 1
    for sql, params in inserts:
        assert len(sql.encode()) <= MAX_CACHED_STATEMENT_LENGTH and params <= MAX_CACHED_STATEMENT_PARAMS
