"""request_reply's look for the reply (routing.services.reply_taken): only the asked session's answer, taken and
acked once, and a sign of life from the session waiting."""

import uuid
from datetime import timedelta

from django.utils import timezone

from routing.contracts import SendIn
from routing.sending import message_send
from routing.services import reply_taken
from sessions_app.models import AgentSession
from sessions_app.services import sessions_seen


def test_a_session_waiting_for_a_reply_stays_alive(alpha):
    asker, _ = alpha.connect("asker")
    sessions_seen([asker], now=timezone.now() - timedelta(seconds=50), always=True)  # quiet for a while
    assert reply_taken(asker, uuid.uuid4(), ["nothing-yet"]) == []
    assert AgentSession.objects.get(pk=asker.pk).last_heartbeat_at > timezone.now() - timedelta(seconds=5)


def test_the_reply_is_taken_once_and_only_from_the_session_asked(alpha):
    asker, _ = alpha.connect("asker")
    expert, _ = alpha.connect("expert")
    other, _ = alpha.connect("other")
    request = message_send(asker, SendIn(recipient_id="expert", payload={"q": 1})).message
    message_send(other, SendIn(recipient_id="asker", payload={"a": "forged"}, reply_to=str(request.pk)))
    assert reply_taken(asker, expert.pk, [str(request.pk)]) == []
    answer = message_send(expert, SendIn(recipient_id="asker", payload={"a": 2}, reply_to=str(request.pk))).message
    [taken] = reply_taken(asker, expert.pk, [str(request.pk)])
    assert (taken.pk, taken.state) == (answer.pk, "acked")
    assert reply_taken(asker, expert.pk, [str(request.pk)]) == []  # acked: not the reply again
