"""Writes for messages after they are sent: claim (receive), ack, redelivery, expiry, dead letters.

Sending is routing.sending, the one engine for 1:1 sends and broadcasts. The guarantee: a send
is answered only after the message is committed; an event on the channel layer is only a
wake-up call after that. Delivery is at-least-once: a delivered message not acked within the
project's ack_timeout is delivered again, up to max_attempts, then it is a dead letter an
admin can replay.
"""

import logging
import uuid
from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from broker_site import counters
from broker_site.errors import QueueFull, ValidationFailed
from projects.audit import audit_done
from projects.auth import Principal
from projects.models import ApiKey, Project
from routing import events
from routing.crossing import deliveries_counted
from routing.models import PENDING, Message
from routing.selectors import dead_letter_get
from routing.sending import Accepted
from routing.statements import messages_acked, messages_claimed, recipients_locked
from sessions_app.models import AgentSession
from sessions_app.services import sessions_seen

log = logging.getLogger("broker.routing")


def messages_claim(session: AgentSession, *, max_messages: int = 10, auto_ack: bool = False) -> list[Message]:
    """Hand the session its next queued messages (priority, then age) and mark them delivered."""
    return messages_claim_many({session: max_messages}, auto_ack=auto_ack)[session.pk]


def messages_claim_many(wants: dict[AgentSession, int], *, auto_ack: bool = False) -> dict[uuid.UUID, list[Message]]:
    """Claim for many sessions at once: each gets up to its number of messages, in delivery order.

    One round of queries however many sessions ask, so a thousand sockets woken by one
    broadcast cost a few statements, not a few thousand.

    The statement is routing.statements' messages_claimed, which names its race.
    """
    now = timezone.now()
    by_id = {session.pk: session for session, limit in wants.items() if limit > 0}
    claimed: dict[uuid.UUID, list[Message]] = {pk: [] for pk in (s.pk for s in wants)}
    due = {pk: (wants[session], None if auto_ack else now + timedelta(seconds=session.project.ack_timeout))
           for pk, session in by_id.items()}
    state = Message.State.ACKED if auto_ack else Message.State.DELIVERED
    handed = messages_claimed(due, now, state)
    for message in handed:
        claimed[message.recipient_id].append(message)
    deliveries_counted(handed)
    handed_by_project = Counter(message.project_id for message in handed)
    counters.messages_counted("delivered", handed_by_project)
    if auto_ack:
        counters.messages_counted("acked", handed_by_project)
    return claimed


def reply_taken(session: AgentSession, asked: uuid.UUID, answering: list[str]) -> list[Message]:
    """The first reply waiting for this session to a request of its own: a message from the session `asked`
    whose reply_to is one of `answering` (the request's message id or correlation id; from anyone else it is
    not the reply), delivered and acked at once; [] if none yet.

    A look counts as the session's heartbeat, as a receive's claim does: a session waiting for an
    answer is alive. A reply pushed to the session's WebSocket meanwhile (delivered, not acked) is
    still the reply.
    Race: a receive, another request_reply of the session or the sweeper may take the row between
    the read and the UPDATE; the UPDATE takes it only as it was read (state and attempts), else
    this look found nothing and the next wake-up looks again.
    """
    sessions_seen([session])
    now = timezone.now()
    reply = (Message.objects.filter(project=session.project, recipient=session, sender_id=asked, state__in=PENDING,
                                    reply_to__in=answering)
             .exclude(expires_at__lte=now).order_by("created_at", "pk").first())
    if reply is None or not Message.objects.filter(pk=reply.pk, state=reply.state, attempts=reply.attempts).update(
            state=Message.State.ACKED, attempts=F("attempts") + 1, delivered_at=now, acked_at=now, redeliver_at=None):
        return []
    if reply.state == Message.State.QUEUED:  # handed over first now (not pushed before)
        counters.messages_counted("delivered", {reply.project_id: 1})
    reply.state, reply.attempts, reply.delivered_at, reply.acked_at, reply.redeliver_at = (
        Message.State.ACKED, reply.attempts + 1, now, now, None)
    deliveries_counted([reply])
    counters.messages_counted("acked", {reply.project_id: 1})
    return [reply]


def messages_unclaim(session: AgentSession, messages: list[Message]) -> int:
    """Put back what a receive claimed for a client that went before it was answered: queued again,
    the attempt not counted (nobody saw it), so the next receive gets it as if this one never ran.

    Race: between the claim and now, the sweeper may have redelivered a message, a resume requeued
    it, or another receive claimed it again. Only a row still exactly as this claim left it (its
    state, attempt count and delivery time) is put back; any other is left as they made it.
    """
    put_back: list[Message] = []
    with transaction.atomic():
        for message in messages:
            if Message.objects.filter(
                pk=message.pk, recipient_id=session.pk, state=message.state, attempts=message.attempts,
                delivered_at=message.delivered_at,
            ).update(state=Message.State.QUEUED, attempts=F("attempts") - 1, redeliver_at=None, acked_at=None,
                     delivered_at=None if message.attempts <= 1 else F("delivered_at")):
                put_back.append(message)
        if put_back:
            events.message_available(session.pk)  # another receive of the session may be waiting now
    deliveries_counted(put_back, undone=True)
    return len(put_back)


def messages_ack(session: AgentSession, message_ids: list[str]) -> dict[str, list[str]]:
    """Ack delivered messages of this session; says which ids were acked, already acked, or unknown."""
    return messages_ack_many([(session, message_ids_parsed(message_ids))])[0]


def messages_ack_many(requests: list[tuple[AgentSession, list[uuid.UUID]]]) -> list[dict[str, list[str]]]:
    """Acks of many sessions in one statement; each session can ack only its own messages.

    When every id named was a delivered message of its session, the UPDATE's count says so and
    that is the answer; otherwise a second statement reads what the others are.
    """
    acked = messages_acked([(session.pk, ids) for session, ids in requests], timezone.now())
    _acks_counted(requests, acked)
    if acked == sum(len(ids) for _, ids in requests):
        return [{"acked": [str(i) for i in ids], "not_acked": [], "unknown": []} for _, ids in requests]
    mine = Q()
    for session, ids in requests:
        mine |= Q(recipient_id=session.pk, id__in=ids)
    found = {(pk, recipient): state for pk, recipient, state in
             Message.objects.filter(mine).values_list("id", "recipient_id", "state")}
    answers = []
    for session, ids in requests:
        states = {i: found.get((i, session.pk)) for i in ids}
        answers.append({"acked": [str(i) for i, s in states.items() if s == Message.State.ACKED],
                        "not_acked": [str(i) for i, s in states.items() if s not in (None, Message.State.ACKED)],
                        "unknown": [str(i) for i, s in states.items() if s is None]})
    return answers


def _acks_counted(requests: list[tuple[AgentSession, list[uuid.UUID]]], acked: int) -> None:
    """`acked` new acks in the metrics, per project: exact when every id named was acked now or the round is one
    project's; otherwise (a repeat or a stranger's id among them) shared out in the order of the requests."""
    left, by_project = acked, Counter()
    for session, ids in requests:
        taken = min(len(ids), left)
        by_project[session.project_id] += taken
        left -= taken
    counters.messages_counted("acked", by_project)


def message_ids_parsed(values: list[str], field: str = "message_ids") -> list[uuid.UUID]:
    """Message ids as UUIDs, each once, in the order given."""
    try:
        return list(dict.fromkeys(uuid.UUID(value) for value in values))
    except ValueError:
        raise ValidationFailed(f"{field} holds something that is not a message id.", field=field) from None


def messages_requeue_unacked(session: AgentSession) -> int:
    """Queue again, at once, what the session was handed and did not ack (a resume: the old connection is gone)."""
    requeued = Message.objects.filter(recipient=session, state=Message.State.DELIVERED).update(
        state=Message.State.QUEUED, redeliver_at=None)
    if requeued:
        events.message_available(session.pk)
        transaction.on_commit(lambda: counters.messages_counted("redelivered", {session.project_id: requeued}))
    return requeued


def sweep(now=None, batch: int = 1000) -> dict[str, int]:
    """Expire messages past their ttl, and make unacked deliveries deliverable again or dead.

    Safe to run in several processes at once: each pass claims its rows with
    select_for_update(skip_locked=True), and every UPDATE re-checks the state it expects.
    """
    now = now or timezone.now()
    counts = {"expired": 0, "redelivered": 0, "dead_max_attempts": 0, "purged": 0}
    with transaction.atomic():
        due = list(Message.objects.select_for_update(skip_locked=True)
                   .filter(state__in=PENDING, expires_at__lte=now).values_list("id", flat=True)[:batch])
        counts["expired"] = Message.objects.filter(id__in=due, state__in=PENDING).update(
            state=Message.State.DEAD, dead_reason=Message.DeadReason.EXPIRED, dead_at=now, redeliver_at=None)
        expired = Counter(Message.objects.filter(id__in=due).values_list("project_id", flat=True)) if due else {}
    with transaction.atomic():
        due = list(Message.objects.select_for_update(skip_locked=True)
                   .filter(state=Message.State.DELIVERED, redeliver_at__lte=now)
                   .values_list("id", flat=True)[:batch])
        delivered = Message.objects.filter(id__in=due, state=Message.State.DELIVERED)
        spent = delivered.filter(attempts__gte=F("project__max_attempts"))
        dying = Counter(spent.values_list("project_id", flat=True)) if due else {}
        counts["dead_max_attempts"] = spent.update(
            state=Message.State.DEAD, dead_reason=Message.DeadReason.MAX_ATTEMPTS, dead_at=now, redeliver_at=None)
        again = list(delivered.values_list("id", "recipient_id", "project_id"))
        counts["redelivered"] = Message.objects.filter(id__in=[i for i, _, _ in again],
                                                       state=Message.State.DELIVERED).update(
            state=Message.State.QUEUED, redeliver_at=None)
        for recipient_id in {r for _, r, _ in again}:
            events.message_available(recipient_id)
    counters.messages_counted("dead_expired", expired)
    counters.messages_counted("dead_max_attempts", dying)
    counters.messages_counted("redelivered", Counter(project for _, _, project in again))
    counts["purged"] = _purge_ended(now - timedelta(seconds=settings.BROKER["RETENTION_SECONDS"]), batch)
    if any(counts.values()):
        log.info("sweep", extra=counts)
    return counts


def _purge_ended(before, batch: int) -> int:
    """Delete acked messages and dead letters that ended before `before`, one batch per pass."""
    ended = (Message.objects.filter(state=Message.State.ACKED, acked_at__lt=before)
             | Message.objects.filter(state=Message.State.DEAD, dead_at__lt=before))
    ids = list(ended.values_list("id", flat=True)[:batch])
    deleted, _ = Message.objects.filter(id__in=ids).delete()
    return deleted


def dead_letter_replay(project: Project, caller: Principal, message_id: str) -> Accepted:
    """Queue a dead letter again with a fresh attempt count (and a fresh ttl, if it had one)."""
    caller.require_role(ApiKey.Role.ADMIN, "replay dead letters")
    message = dead_letter_get(project, message_id, caller)
    now = timezone.now()
    with transaction.atomic():
        size = next((s.pending for s in recipients_locked({}, [message.recipient_id], []).sessions), 0)
        if size >= project.max_queue_size:
            raise QueueFull("The recipient's queue is still full; replay later.", message_id=str(message.id),
                            queue_size=size, capacity=project.max_queue_size)
        Message.objects.filter(pk=message.pk, state=Message.State.DEAD).update(
            state=Message.State.QUEUED, attempts=0, dead_reason="", dead_at=None, delivered_at=None,
            expires_at=now + timedelta(seconds=message.ttl) if message.ttl else None)
        events.message_available(message.recipient_id)
    message.refresh_from_db()
    audit_done(caller, "dead_letter_replay", project.pk, {"message_id": str(message.id)})
    return Accepted(message, size + 1)


def dead_letters_purge(project: Project, caller: Principal, message_ids: list[str] | None = None) -> int:
    """Delete the project's dead letters: the ones named, or all. Nothing that is still pending."""
    caller.require_role(ApiKey.Role.ADMIN, "purge dead letters")
    dead = Message.objects.filter(project=project, state=Message.State.DEAD)
    if message_ids is not None:
        dead = dead.filter(id__in=message_ids_parsed(message_ids))
    deleted, _ = dead.delete()
    if deleted:
        audit_done(caller, "dead_letters_purge", project.pk, {"deleted": deleted})
    return deleted
