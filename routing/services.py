"""Writes for messages: send, claim (receive), ack, sweep, dead letters.

The guarantee: a send is answered only after the message is committed; an event on the
channel layer is only a wake-up call after that. Delivery is at-least-once: a delivered
message not acked within the project's ack_timeout is delivered again, up to max_attempts,
then it is a dead letter an admin can replay.
"""

import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, OuterRef, Q, Subquery, Window
from django.db.models.functions import Coalesce, RowNumber
from django.utils import timezone

from broker_site.errors import BrokerError, Conflict, Forbidden, Incompatible, NotFound, QueueFull, ValidationFailed
from projects.auth import Caller
from projects.models import ApiKey, AuditEvent, Project
from projects.services import audit_record
from protocols.models import Protocol
from protocols.schemas import payload_validate
from protocols.selectors import protocol_get
from protocols.transform import transform_for
from protocols.versions import version_key
from routing import events
from routing.headers import Headers, check_payload
from routing.models import Message
from routing.selectors import dead_letter_get
from sessions_app.models import AgentSession, SessionBlock
from sessions_app.selectors import live_sessions, sessions_by_ref
from sessions_app.services import sessions_touch

log = logging.getLogger("broker.routing")
PENDING = (Message.State.QUEUED, Message.State.DELIVERED)
HEADER_FIELDS = ("priority", "ttl", "correlation_id", "reply_to")
SEND_OPTIONS = frozenset(("protocol_name", "protocol_version", *HEADER_FIELDS))
NEAR_CAPACITY = 0.9


@dataclass(frozen=True)
class Accepted:
    message: Message
    queue_size: int
    pushed: bool = False  # the recipient holds a live WebSocket, which is being handed the message

    def as_dict(self) -> dict[str, Any]:
        status = "delivered" if self.pushed else self.message.state
        data: dict[str, Any] = {"message_id": str(self.message.id), "status": status,
                                "recipient_id": str(self.message.recipient_id), "queue_size": self.queue_size}
        if self.message.transformed_to:
            data.update(transformed_from=self.message.transformed_from, transformed_to=self.message.transformed_to)
        return data


def _require_live(sender: AgentSession) -> None:
    if sender.status == AgentSession.Status.DISCONNECTED:
        raise Conflict("This session is disconnected; resume it with connect_session and its token.",
                       session_id=str(sender.id))


def resolve_protocol(sender: AgentSession, name: str | None, version: str | None) -> Protocol | None:
    """The registered protocol a message claims, defaulting the version to the sender's highest declared."""
    if not name:
        if version:
            raise ValidationFailed("protocol_version needs protocol_name.", field="protocol_name")
        return None
    if not version:
        declared = sorted((sender.supported_protocols or {}).get(name, []), key=version_key, reverse=True)
        registered = set(Protocol.objects.filter(project=sender.project, name=name).values_list("version", flat=True))
        candidates = [v for v in declared if v in registered] or sorted(registered, key=version_key, reverse=True)
        if not candidates:
            raise NotFound(f"No protocol {name} is registered in this project.", protocol_name=name)
        version = candidates[0]
    return protocol_get(sender.project, name, version)


def _audit_if_cross_project(sender: AgentSession, ref: str) -> None:
    """Cross-project routing is refused for now; an attempt at another project's session is audited."""
    try:
        target = AgentSession.objects.filter(pk=uuid.UUID(str(ref))).exclude(project=sender.project).first()
    except ValueError:
        return
    if target is not None:
        audit_record("cross_project_send", AuditEvent.Outcome.DENIED, actor_key_id=sender.created_by_key,
                     source_project=sender.project_id, target_project=target.project_id,
                     details={"sender": str(sender.id), "reason": "no_project_link"})


def _holds_push_connection(session: AgentSession, now) -> bool:
    return session.push_until is not None and session.push_until > now


def _lock_recipients(recipient_ids: set[uuid.UUID], sender_ids: Collection[uuid.UUID] = ()
                     ) -> tuple[dict[uuid.UUID, int], set[tuple[uuid.UUID, uuid.UUID]]]:
    """Lock the recipients' rows; their queue sizes, read under the lock, and the blocks among them.

    Race: two sends to one recipient could both see room for one more. Locking the
    recipient's row serializes them (SQLite's IMMEDIATE transactions already do); in pk
    order, so concurrent rounds cannot deadlock on each other. NO KEY UPDATE, because
    inserting a message takes KEY SHARE on the sender's row for its foreign key: with a plain
    FOR UPDATE, A->B and B->A at once deadlock. The (blocker, blocked) pairs among these
    recipients and `sender_ids` are read under the lock too, so a block made since counts.
    """
    pending = (Message.objects.filter(recipient=OuterRef("pk"), state__in=PENDING).order_by()
               .values("recipient").annotate(n=Count("id")).values("n"))
    sizes = dict(AgentSession.objects.select_for_update(no_key=True, of=("self",)).filter(pk__in=recipient_ids)
                 .order_by("pk").annotate(pending=Coalesce(Subquery(pending), 0)).values_list("pk", "pending"))
    blocks = set(SessionBlock.objects.filter(blocker__in=recipient_ids, blocked__in=sender_ids)
                 .values_list("blocker_id", "blocked_id")) if sender_ids else set()
    return sizes, blocks


@dataclass(frozen=True)
class SendRequest:
    sender: AgentSession
    recipient: str  # a session id or name in the sender's project
    payload: Any
    options: dict[str, Any] = field(default_factory=dict)  # protocol_name, protocol_version, and the headers


@dataclass
class _Draft:
    index: int
    request: SendRequest
    fields: dict[str, Any]
    protocol: Protocol | None
    payload: Any = None
    target: AgentSession | None = None

    @property
    def sender(self) -> AgentSession:
        return self.request.sender


def message_send(sender: AgentSession, *, recipient: str, payload: Any, **options: Any) -> Accepted:
    """Persist one message for `recipient` and wake its listeners after commit (see messages_send_many)."""
    outcome = messages_send_many([SendRequest(sender, recipient, payload, options)])[0]
    if isinstance(outcome, BrokerError):
        raise outcome
    return outcome


def messages_send_many(requests: list[SendRequest]) -> list[Accepted | BrokerError]:
    """Persist many sends in one transaction; each gets its own outcome, in the order given.

    Refused before anything is stored: a disconnected sender, bad headers or payload, an
    unknown recipient, a block, an incompatible protocol. A full queue stores the message as
    a dead letter (`queue_full`) so an operator can see it, and refuses the send.

    One round of queries for the whole batch: the WebSocket face gathers the sends of all its
    connections (routing.batching), so a busy server pays a few statements per round, not
    per message. Messages of one round keep their order: each is a microsecond younger than
    the one before, so two sends to one recipient are delivered in the order they came.
    """
    outcomes: list[Accepted | BrokerError | None] = [None] * len(requests)
    drafts: list[_Draft] = []
    for index, request in enumerate(requests):
        try:
            drafts.append(_draft(index, request))
        except BrokerError as exc:
            outcomes[index] = exc
    found = _recipients_of(drafts)
    ready: list[_Draft] = []
    unknown: list[_Draft] = []
    for draft in drafts:
        try:
            draft.target = found.get((draft.sender.project_id, draft.request.recipient))
            if draft.target is None:
                unknown.append(draft)
                raise NotFound("No session with that id or name in this project.", session=draft.request.recipient)
            _convert(draft)
            ready.append(draft)
        except BrokerError as exc:
            outcomes[draft.index] = exc
    if ready:
        _store(ready, outcomes)
    sessions_touch(list({d.sender.pk: d.sender for d in drafts}.values()))
    for draft in unknown:
        _audit_if_cross_project(draft.sender, draft.request.recipient)
    return outcomes  # type: ignore[return-value]  # every request has its outcome by now


def _draft(index: int, request: SendRequest) -> _Draft:
    sender, options = request.sender, request.options
    if not SEND_OPTIONS.issuperset(options):
        raise TypeError(f"unknown send options: {sorted(set(options) - SEND_OPTIONS)}")
    _require_live(sender)
    headers = Headers.checked(**{k: options[k] for k in HEADER_FIELDS if options.get(k) is not None})
    check_payload(sender.project, request.payload)
    if not isinstance(request.recipient, str) or not request.recipient or len(request.recipient) > 100:
        raise ValidationFailed("A session is named by its id or its name.", field="session")
    protocol = resolve_protocol(sender, options.get("protocol_name"), options.get("protocol_version"))
    return _Draft(index, request, headers.fields(), protocol, request.payload)


def _recipients_of(drafts: list[_Draft]) -> dict[tuple[str, str], AgentSession]:
    """(project id, reference) -> session, one query per project in the batch."""
    wanted: dict[str, set[str]] = {}
    for draft in drafts:
        wanted.setdefault(draft.sender.project_id, set()).add(draft.request.recipient)
    found = {}
    for project_id, refs in wanted.items():
        for ref, session in sessions_by_ref(project_id, refs).items():
            found[(project_id, ref)] = session
    return found


def _convert(draft: _Draft) -> None:
    """Validate against the protocol and convert for the recipient, before any lock is taken."""
    if draft.protocol is None:
        return
    protocol, project = draft.protocol, draft.sender.project
    payload_validate(protocol, draft.payload)
    converted = transform_for(project, protocol, draft.payload, draft.target)
    draft.payload = converted.payload
    draft.fields.update(protocol_name=protocol.name, protocol_version=converted.protocol.version,
                        transformed_from=converted.transformed_from or "", transformed_to=converted.transformed_to or "")


def _store(ready: list[_Draft], outcomes: list) -> None:
    now = timezone.now()
    rows: list[Message] = []
    waking: dict[uuid.UUID, list[str]] = {}
    full: list[tuple[_Draft, Message, int]] = []
    with transaction.atomic():
        sizes, blocks = _lock_recipients({d.target.pk for d in ready}, {d.sender.pk for d in ready})
        for draft in ready:
            sender, target, project = draft.sender, draft.target, draft.sender.project
            if (target.pk, sender.pk) in blocks:
                outcomes[draft.index] = Forbidden("The recipient has blocked this session.", recipient_id=str(target.id))
                continue
            size = sizes.get(target.pk, 0)
            created = now + timedelta(microseconds=len(rows))
            ttl = draft.fields["ttl"]
            message = Message(project=project, sender=sender, recipient=target, payload=draft.payload,
                              created_at=created, expires_at=created + timedelta(seconds=ttl) if ttl else None,
                              **draft.fields)
            rows.append(message)
            if size >= project.max_queue_size:
                message.state, message.dead_reason, message.dead_at = (
                    Message.State.DEAD, Message.DeadReason.QUEUE_FULL, now)
                full.append((draft, message, size))
                continue
            sizes[target.pk] = size + 1
            waking.setdefault(target.pk, []).append(str(message.id))
            outcomes[draft.index] = Accepted(message, size + 1, pushed=_holds_push_connection(target, now))
            _warn_near_capacity(project, target, size + 1)
        Message.objects.bulk_create(rows)
        for recipient_id, message_ids in waking.items():
            events.message_available(recipient_id, message_ids)
    for draft, message, size in full:
        capacity = draft.sender.project.max_queue_size
        log.warning("queue_full", extra={"project": draft.sender.project_id, "session_id": str(draft.target.id),
                                         "message_id": str(message.id), "capacity": capacity})
        outcomes[draft.index] = QueueFull(
            f"The recipient's queue is full ({size} of {capacity}); the message was kept as a dead letter.",
            message_id=str(message.id), recipient_id=str(draft.target.id), queue_size=size, capacity=capacity)


def _capability_filter(raw: Any) -> dict[str, bool]:
    if raw is None:
        return {}
    if (not isinstance(raw, dict) or len(raw) > 50
            or any(not isinstance(k, str) or len(k) > 64 or not isinstance(v, bool) for k, v in raw.items())):
        raise ValidationFailed('capability_filter maps feature names to true (must have) or false (must not have).',
                               field="capability_filter")
    return raw


def message_broadcast(sender: AgentSession, *, payload: Any, protocol_name: str | None = None,
                      protocol_version: str | None = None, capability_filter: dict | None = None,
                      priority: str = "normal", ttl: int | None = None, correlation_id: str = "") -> dict[str, Any]:
    """One persisted copy per live session of the project (sender excluded), in one transaction.

    Each session is accounted for: queued, failed (incompatible, queue full) or skipped (filtered
    out, blocking the sender), with a reason; and when nobody got it, the result says why.
    """
    _require_live(sender)
    headers = Headers.checked(priority=priority, ttl=ttl, correlation_id=correlation_id)
    wanted = _capability_filter(capability_filter)
    project = sender.project
    check_payload(project, payload)
    protocol = resolve_protocol(sender, protocol_name, protocol_version)
    if protocol is not None:
        payload_validate(protocol, payload)
    blockers = set(SessionBlock.objects.filter(blocked=sender).values_list("blocker_id", flat=True))
    delivered: list[dict] = []  # to sessions with a live WebSocket, which are being pushed the message now
    queued: list[dict] = []
    failed: list[dict] = []
    skipped: list[dict] = []
    broadcast_id = uuid.uuid4()
    now = timezone.now()
    expires_at = now + timedelta(seconds=headers.ttl) if headers.ttl else None
    with transaction.atomic():
        # Lock the recipients in one order, so concurrent broadcasts cannot deadlock on them.
        candidates = list(live_sessions(project).exclude(pk=sender.pk)
                          .select_for_update(no_key=True, of=("self",)).order_by("pk"))
        sizes = _pending_counts(candidates)
        rows = []
        for target in candidates:
            who = {"session_id": str(target.id), "name": target.name}
            features = set(target.supported_features or [])
            mismatch = next((f for f, must in wanted.items() if (f in features) != must), None)
            if mismatch is not None:
                skipped.append({**who, "reason": f"capability_filter: {mismatch} "
                                                 f"{'missing' if wanted[mismatch] else 'present'}"})
                continue
            if target.pk in blockers:
                skipped.append({**who, "reason": "blocks the sender"})
                continue
            fields = headers.fields()
            body = payload
            if protocol is not None:
                try:
                    converted = transform_for(project, protocol, payload, target)
                except Incompatible as exc:
                    failed.append({**who, "reason": "incompatible", "detail": exc.message})
                    continue
                body = converted.payload
                fields.update(protocol_name=protocol.name, protocol_version=converted.protocol.version,
                              transformed_from=converted.transformed_from or "",
                              transformed_to=converted.transformed_to or "")
            full = sizes.get(target.pk, 0) >= project.max_queue_size
            message = Message(project=project, sender=sender, recipient=target, broadcast_id=broadcast_id,
                              payload=body, created_at=now, expires_at=expires_at, **fields)
            if full:
                message.state, message.dead_reason, message.dead_at = (
                    Message.State.DEAD, Message.DeadReason.QUEUE_FULL, now)
                failed.append({**who, "reason": "queue_full", "message_id": str(message.id)})
            else:
                (delivered if _holds_push_connection(target, now) else queued).append(
                    {**who, "message_id": str(message.id)})
                events.message_available(target.pk, [str(message.id)])
            rows.append(message)
        Message.objects.bulk_create(rows)
    sessions_touch([sender])
    result: dict[str, Any] = {
        "broadcast_id": str(broadcast_id), "delivered": delivered, "queued": queued, "failed": failed,
        "skipped": skipped,
        "counts": {"delivered": len(delivered), "queued": len(queued), "failed": len(failed), "skipped": len(skipped)},
    }
    if not queued and not delivered:
        result["reason"] = ("no other live session in the project" if not candidates
                            else "every live session was skipped or failed; see skipped and failed")
    return result


def _pending_counts(sessions: list[AgentSession]) -> dict[uuid.UUID, int]:
    rows = (Message.objects.filter(recipient__in=sessions, state__in=PENDING)
            .values("recipient_id").annotate(n=Count("id")))
    return {row["recipient_id"]: row["n"] for row in rows}


def _warn_near_capacity(project: Project, recipient: AgentSession, size: int) -> None:
    capacity = project.max_queue_size
    if size >= capacity * NEAR_CAPACITY:
        log.warning("queue_near_capacity", extra={"project": project.pk, "session_id": str(recipient.id),
                                                  "size": size, "capacity": capacity,
                                                  "percent": round(100 * size / capacity)})


def messages_claim(session: AgentSession, *, max_messages: int = 10, auto_ack: bool = False) -> list[Message]:
    """Hand the session its next queued messages (priority, then age) and mark them delivered."""
    return messages_claim_many({session: max_messages}, auto_ack=auto_ack)[session.pk]


def messages_claim_many(wants: dict[AgentSession, int], *, auto_ack: bool = False) -> dict[uuid.UUID, list[Message]]:
    """Claim for many sessions at once: each gets up to its number of messages, in delivery order.

    One round of queries however many sessions ask, so a thousand sockets woken by one
    broadcast cost a few statements, not a few thousand.

    Race: two connections (or processes) may claim for one session at once. The candidates
    are read without locks, then locked with skip_locked, which gives each claimer different
    rows on PostgreSQL, and re-checked as queued; SQLite's IMMEDIATE transactions run claims
    one after the other.
    """
    now = timezone.now()
    by_id = {session.pk: (session, limit) for session, limit in wants.items() if limit > 0}
    claimed: dict[uuid.UUID, list[Message]] = {pk: [] for pk in (s.pk for s in wants)}
    if not by_id:
        return claimed
    order = [F("priority").desc(), F("created_at").asc(), F("id").asc()]
    with transaction.atomic():
        ranked = (Message.objects.filter(recipient_id__in=by_id, state=Message.State.QUEUED)
                  .exclude(expires_at__lte=now)
                  .annotate(rank=Window(RowNumber(), partition_by=[F("recipient_id")], order_by=order))
                  .filter(rank__lte=max(limit for _, limit in by_id.values()))
                  .values_list("id", "recipient_id", "rank"))
        candidates = [pk for pk, recipient, rank in ranked if rank <= by_id[recipient][1]]
        if not candidates:
            return claimed
        rows = list(Message.objects.select_for_update(skip_locked=True)
                    .filter(id__in=candidates, state=Message.State.QUEUED).order_by(*order))
        for timeout in {by_id[m.recipient_id][0].project.ack_timeout for m in rows}:
            batch = [m for m in rows if by_id[m.recipient_id][0].project.ack_timeout == timeout]
            _mark_claimed(batch, now, None if auto_ack else now + timedelta(seconds=timeout))
    for message in rows:
        claimed[message.recipient_id].append(message)
    return claimed


def _mark_claimed(messages: list[Message], now, redeliver_at) -> None:
    """Delivered (or, without redeliver_at, acked at once); the rows are locked by the caller."""
    state = Message.State.DELIVERED if redeliver_at is not None else Message.State.ACKED
    Message.objects.filter(id__in=[m.id for m in messages]).update(
        state=state, attempts=F("attempts") + 1, delivered_at=now, redeliver_at=redeliver_at,
        acked_at=None if redeliver_at is not None else now)
    for message in messages:
        message.state, message.attempts, message.delivered_at = state, message.attempts + 1, now
        message.redeliver_at, message.acked_at = redeliver_at, None if redeliver_at is not None else now


def messages_ack(session: AgentSession, message_ids: list[str]) -> dict[str, list[str]]:
    """Ack delivered messages of this session; says which ids were acked, already acked, or unknown."""
    return messages_ack_many([(session, message_ids_checked(message_ids))])[0]


def messages_ack_many(requests: list[tuple[AgentSession, list[uuid.UUID]]]) -> list[dict[str, list[str]]]:
    """Acks of many sessions in two statements; each session can ack only its own messages."""
    now = timezone.now()
    mine = Q()
    for session, ids in requests:
        mine |= Q(recipient_id=session.pk, id__in=ids)
    Message.objects.filter(mine, state=Message.State.DELIVERED).update(
        state=Message.State.ACKED, acked_at=now, redeliver_at=None)
    found = {(pk, recipient): state for pk, recipient, state in
             Message.objects.filter(mine).values_list("id", "recipient_id", "state")}
    answers = []
    for session, ids in requests:
        states = {i: found.get((i, session.pk)) for i in ids}
        answers.append({"acked": [str(i) for i, s in states.items() if s == Message.State.ACKED],
                        "not_acked": [str(i) for i, s in states.items() if s not in (None, Message.State.ACKED)],
                        "unknown": [str(i) for i, s in states.items() if s is None]})
    return answers


def message_ids_checked(values: Any) -> list[uuid.UUID]:
    return _uuid_list(values, "message_ids")


def _uuid_list(values: Any, field: str, limit: int = 1000) -> list[uuid.UUID]:
    if not isinstance(values, list) or not values or len(values) > limit:
        raise ValidationFailed(f"{field} is a list of 1 to {limit} message ids.", field=field, limit=limit)
    try:
        return list(dict.fromkeys(uuid.UUID(str(v)) for v in values))
    except ValueError:
        raise ValidationFailed(f"{field} holds something that is not a message id.", field=field) from None


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
    with transaction.atomic():
        due = list(Message.objects.select_for_update(skip_locked=True)
                   .filter(state=Message.State.DELIVERED, redeliver_at__lte=now)
                   .values_list("id", flat=True)[:batch])
        delivered = Message.objects.filter(id__in=due, state=Message.State.DELIVERED)
        counts["dead_max_attempts"] = delivered.filter(attempts__gte=F("project__max_attempts")).update(
            state=Message.State.DEAD, dead_reason=Message.DeadReason.MAX_ATTEMPTS, dead_at=now, redeliver_at=None)
        again = list(delivered.values_list("id", "recipient_id"))
        counts["redelivered"] = Message.objects.filter(id__in=[i for i, _ in again],
                                                       state=Message.State.DELIVERED).update(
            state=Message.State.QUEUED, redeliver_at=None)
        for recipient_id in {r for _, r in again}:
            events.message_available(recipient_id, [str(i) for i, r in again if r == recipient_id])
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


def dead_letter_replay(project: Project, caller: Caller | None, message_id: str) -> Accepted:
    """Queue a dead letter again with a fresh attempt count (and a fresh ttl, if it had one)."""
    if caller is not None:
        caller.require_role(ApiKey.Role.ADMIN, "replay dead letters")
    message = dead_letter_get(project, message_id)
    now = timezone.now()
    with transaction.atomic():
        sizes, _ = _lock_recipients({message.recipient_id})
        size = sizes.get(message.recipient_id, 0)
        if size >= project.max_queue_size:
            raise QueueFull("The recipient's queue is still full; replay later.", message_id=str(message.id),
                            queue_size=size, capacity=project.max_queue_size)
        Message.objects.filter(pk=message.pk, state=Message.State.DEAD).update(
            state=Message.State.QUEUED, attempts=0, dead_reason="", dead_at=None, delivered_at=None,
            expires_at=now + timedelta(seconds=message.ttl) if message.ttl else None)
        events.message_available(message.recipient_id, [str(message.id)])
    message.refresh_from_db()
    return Accepted(message, size + 1)


def dead_letters_purge(project: Project, caller: Caller | None, message_ids: list[str] | None = None) -> int:
    if caller is not None:
        caller.require_role(ApiKey.Role.ADMIN, "purge dead letters")
    dead = Message.objects.filter(project=project, state=Message.State.DEAD)
    if message_ids is not None:
        dead = dead.filter(id__in=_uuid_list(message_ids, "message_ids"))
    deleted, _ = dead.delete()
    return deleted
