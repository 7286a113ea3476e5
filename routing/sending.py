"""The one send engine: 1:1 sends and broadcasts, one request or a whole round of them.

Every face sends through `send_check` then `messages_send` (or the one-request forms that do
both, `message_send` and `message_broadcast`). A broadcast is expanded into one copy per other live session of the
project, the copies sharing a broadcast_id, and from then on every copy is a message like any
other:

1. checked (`send_check`, per request, before any round): the payload is a JSON object within
   the project's size limit; the protocol it claims is registered, and the payload matches its
   schema. Validation is the costly step a tenant controls, so it never runs inside a round that
   other tenants' requests share: the WebSocket face checks each frame on its own call first;
2. addressed: a 1:1 send to `project_id/session` leaves its project only over an active link whose
   terms it meets (routing.crossing, in step 1; the round re-reads the link); a broadcast reaches
   the live sessions of its own project its capability_filter lets through; then,
   the whole round in one transaction, one statement (routing.statements) finds the 1:1
   recipients by id or name and locks every recipient's row, reading its queue size and blocks;
3. converted for the recipient's protocol version (protocols.transform; a broadcast's copies
   before the transaction);
4. stored, in the same transaction (with the audit events of its crossings, routing.statements.rows_inserted), in
   its thread (given, else the parent's that reply_to names, read in
   one statement for the round, else a new one). A block refuses a 1:1 copy and skips a broadcast
   one; a full queue refuses the copy (queue_full), kept as a dead letter within the bounds of
   routing.refusals; a queue past 90 % logs a
   warning. Each copy is a microsecond younger than the one before it, so order within a
   round is the order of the requests;
5. announced: once committed, one wake-up event per recipient (routing.events).

The sender learns the outcome of each copy: `queued`, or `pushing` when the recipient holds
a live WebSocket, which is being handed the message now. Neither is the message's state
`delivered`, which it reaches when a connection or a receive actually takes it.
"""

import logging
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from broker_site import counters
from broker_site.errors import (
    BrokerError,
    Forbidden,
    Incompatible,
    NotFound,
    PayloadTooLarge,
    ProjectBoundary,
    QueueFull,
    ValidationFailed,
)
from broker_site.jsoncodec import json_size
from broker_site.workers import NeedsDatabase
from projects.audit import audit_record
from projects.models import AuditEvent, Project, ProjectLink
from protocols.models import Protocol
from protocols.schemas import payload_validate
from protocols.selectors import protocol_for_message
from protocols.transform import Transformed, transform_for
from routing import events
from routing.contracts import BroadcastIn, RequestReplyIn, SendIn
from routing.crossing import Route, crossings_recorded, link_forgotten, route_checked
from routing.models import Message
from routing.refusals import RefusedLetters
from routing.statements import recipients_locked, rows_inserted
from sessions_app.models import AgentSession
from sessions_app.selectors import live_sessions

log = logging.getLogger("broker.routing")
NEAR_CAPACITY = 0.9


@dataclass(frozen=True)
class SendRequest:
    """A send or broadcast that passed step 1 (made by `send_check` only): the protocol it claims, if any,
    and its payload's size."""

    sender: AgentSession
    message: SendIn | BroadcastIn
    protocol: Protocol | None
    size: int
    route: Route | None = None  # a 1:1 send's recipient project and link (routing.crossing); None for a broadcast


@dataclass(frozen=True)
class Accepted:
    """A message the broker took: persisted, and waiting for (or being pushed to) its recipient."""

    message: Message
    queue_size: int
    pushing: bool = False  # the recipient holds a live WebSocket, which is being handed the message

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"message_id": str(self.message.id), "status": "pushing" if self.pushing else "queued",
                                "recipient_id": str(self.message.recipient_id), "queue_size": self.queue_size}
        if self.message.transformed_to:
            data.update(transformed_from=self.message.transformed_from, transformed_to=self.message.transformed_to)
        return data


@dataclass
class Broadcast:
    """Where each copy of a broadcast went, every live session of the project accounted for with a reason."""

    broadcast_id: uuid.UUID
    candidates: int = 0
    pushing: list[dict] = field(default_factory=list)
    queued: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        lists = {"pushing": self.pushing, "queued": self.queued, "failed": self.failed, "skipped": self.skipped}
        result: dict[str, Any] = {"broadcast_id": str(self.broadcast_id), **lists,
                                  "counts": {name: len(entries) for name, entries in lists.items()}}
        if not self.pushing and not self.queued:
            result["reason"] = ("no other live session in the project" if not self.candidates
                                else "every live session was skipped or failed; see skipped and failed")
        return result


Outcome = Accepted | Broadcast | BrokerError


@dataclass
class _Copy:
    """One message for one recipient, on its way to the database."""

    request: SendRequest
    recipient: AgentSession
    payload: dict
    fields: dict[str, Any]
    broadcast: Broadcast | None = None
    outcome: Accepted | BrokerError | None = None

    @property
    def sender(self) -> AgentSession:
        return self.request.sender

    @property
    def project(self) -> Project:
        """The recipient's project: its queue limits and dead letters hold, across a link too."""
        route = self.request.route
        return route.project if route is not None else self.sender.project

    @property
    def link(self) -> ProjectLink | None:
        route = self.request.route
        return route.link if route is not None else None

    @property
    def who(self) -> dict[str, Any]:
        return {"session_id": str(self.recipient.id), "name": self.recipient.name}


def message_send(sender: AgentSession, message: SendIn) -> Accepted:
    """Persist one message and wake its recipient's listeners after commit; a refusal is raised."""
    [outcome] = messages_send([send_check(sender, message)])
    if isinstance(outcome, BrokerError):
        raise outcome
    assert isinstance(outcome, Accepted)
    return outcome


def message_broadcast(sender: AgentSession, message: BroadcastIn) -> dict[str, Any]:
    """One copy for every other live session of the sender's project; says where each went and why."""
    [outcome] = messages_send([send_check(sender, message)])
    if isinstance(outcome, BrokerError):
        raise outcome
    assert isinstance(outcome, Broadcast)
    return outcome.as_dict()


def messages_send(requests: list[SendRequest]) -> list[Outcome]:
    """Persist a round of checked sends and broadcasts in one transaction; each gets its outcome, in order.

    The requests passed `send_check` already; nothing here validates a sender's payload again.
    A request refused before anything is stored (an unknown recipient, an incompatible version,
    a block, a broadcast over its byte limit) gets its error; a 1:1 send to a full queue gets
    QueueFull, its message kept as a dead letter within routing.refusals' bounds.

    The WebSocket face gathers the sends of all its connections into rounds (routing.batching),
    so a busy server pays a few statements per round, not per message.
    """
    outcomes: list[Outcome | None] = [None] * len(requests)
    singles: list[tuple[int, SendRequest]] = []
    copies: list[tuple[int, _Copy]] = []  # with their request's place: stored in the order of the requests
    for index, request in enumerate(requests):
        if isinstance(request.message, SendIn):
            singles.append((index, request))
            continue
        broadcast = Broadcast(uuid.uuid4())
        try:
            copies += [(index, copy) for copy in _expanded(request, request.protocol, broadcast)]
            outcomes[index] = broadcast
        except PayloadTooLarge as exc:
            outcomes[index] = exc
    refs: dict[str, set[str]] = {}
    for _, request in singles:
        refs.setdefault(request.route.project.pk, set()).add(request.route.ref)
    with transaction.atomic():
        locked, active = recipients_locked(refs, {c.recipient.pk for _, c in copies}, {r.sender.pk for r in requests},
                                           {r.route.link.pk for _, r in singles if r.route.link is not None})
        recipients = _by_ref(locked)
        addressed = [(index, _addressed(request, request.protocol, recipients.get(_ref_key(request)), active))
                     for index, request in singles]
        copies += [(index, copy) for index, copy in addressed if copy.outcome is None]
        copies.sort(key=lambda placed: placed[0])  # stable: a broadcast's copies keep their order
        _threads_found([copy for _, copy in copies])
        stored = _decided([copy for _, copy in copies], {session.pk: session for session in locked})
        traffic = crossings_recorded([(copy.request, copy.request.route, copy.outcome) for _, copy in addressed
                                      if copy.link])
        rows_inserted(stored, traffic.events)
        for recipient_id in {m.recipient_id for m in stored if m.state == Message.State.QUEUED}:
            events.message_available(recipient_id)
    traffic.counted()
    _events_counted([copy for _, copy in copies])
    for index, copy in addressed:
        outcomes[index] = copy.outcome
    for _, copy in copies:
        if copy.broadcast is not None:
            _account(copy)
    return outcomes  # type: ignore[return-value]  # every request has its outcome by now


def _events_counted(copies: list[_Copy]) -> None:
    """A committed round in the metrics: messages accepted (`sent`) and turned away by a full queue, per project."""
    sent: Counter[str] = Counter()
    full: Counter[str] = Counter()
    for copy in copies:
        if isinstance(copy.outcome, Accepted):
            sent[copy.project.pk] += 1
        elif isinstance(copy.outcome, QueueFull):
            full[copy.project.pk] += 1
    counters.messages_counted("sent", sent)
    counters.messages_counted("dead_queue_full", full)


def send_check(sender: AgentSession, message: SendIn | BroadcastIn, *, in_place: bool = False) -> SendRequest:
    """Step 1: the payload within the project's limit, and the protocol it claims, matching its schema.

    A refusal is raised. The one check of every face: REST and MCP through message_send and
    message_broadcast, the async faces before they join a round (routing.batching), `in_place` on the
    event loop first: NeedsDatabase where it would read the database (a protocol, a link not kept,
    a refusal across a link, which is counted and audited).
    """
    if in_place and message.protocol_name is not None:
        raise NeedsDatabase
    size = _payload_size_check(sender.project, message.payload)
    protocol = protocol_for_message(sender.project, sender.supported_protocols, message.protocol_name,
                                    message.protocol_version)
    if protocol is not None:
        if isinstance(message, RequestReplyIn) and "request_response" not in protocol.capabilities:
            raise Incompatible(f"{protocol.name} {protocol.version} does not declare request_response, so it is not "
                               "for request_reply: send_message it, or register a version with that capability.",
                               field="protocol_name", capabilities=protocol.capabilities)
        payload_validate(protocol, message.payload)
    route = None
    if isinstance(message, SendIn):
        route = route_checked(sender, message.recipient_id, message.target_project_id, message.reply_to, protocol,
                              size, in_place=in_place)
    return SendRequest(sender, message, protocol, size, route)


def _payload_size_check(project: Project, payload: dict) -> int:
    """A payload is plain JSON within the project's size limit; returns its size in bytes."""
    try:
        size = json_size(payload)
    except (TypeError, ValueError):  # only a caller inside the process can hand over something not JSON
        raise ValidationFailed("payload must be plain JSON.", field="payload") from None
    if size > project.max_payload_bytes:
        raise PayloadTooLarge(f"payload is {size} bytes; the limit is {project.max_payload_bytes}.",
                              field="payload", size=size, limit=project.max_payload_bytes)
    return size


def _by_ref(sessions: list[AgentSession]) -> dict[tuple[str, str | uuid.UUID], AgentSession]:
    """Step 2 for 1:1 sends: (project id, id or name) -> session; see `_ref_key`."""
    found: dict[tuple[str, str | uuid.UUID], AgentSession] = {}
    for session in sessions:
        found[(session.project_id, session.pk)] = session
        if session.name:
            found[(session.project_id, session.name)] = session
    return found


def _ref_key(request: SendRequest) -> tuple[str, str | uuid.UUID]:
    """A recipient named by something that reads as an id is looked up by id only, however it is written."""
    assert request.route is not None
    project_id, ref = request.route.project.pk, request.route.ref
    try:
        return project_id, uuid.UUID(ref)
    except ValueError:
        return project_id, ref


def _addressed(request: SendRequest, protocol: Protocol | None, recipient: AgentSession | None,
               active_links: set[uuid.UUID]) -> _Copy:
    copy = _Copy(request, recipient, request.message.payload, _header_fields(request.message))  # type: ignore[arg-type]
    link = copy.link
    if link is not None and link.pk not in active_links:
        link_forgotten(link)
        copy.outcome = ProjectBoundary("The link between these projects was suspended or revoked just now.",
                                       link_id=str(link.pk), reason="inactive")
        return copy
    if recipient is None:
        if link is None:
            _audit_if_cross_project(request.sender, request.route.ref)
        copy.outcome = NotFound(f"No session with that id or name in {'that' if link else 'this'} project.",
                                session=request.message.recipient_id)
        return copy
    try:
        _convert(copy, protocol, {})
    except Incompatible as exc:
        copy.outcome = exc
    return copy


def _expanded(request: SendRequest, protocol: Protocol | None, broadcast: Broadcast) -> list[_Copy]:
    """Step 2 for a broadcast: a copy for each other live session its capability_filter lets through.

    Every copy is stored, so one request writes its payload once per copy: past
    BROKER_MAX_BROADCAST_BYTES in all, it is refused whole (PayloadTooLarge), before anything is stored.
    """
    copies = list(_copies_for(request, protocol, broadcast))
    size = request.size
    limit = settings.BROKER["MAX_BROADCAST_BYTES"]
    if size * len(copies) > limit:
        raise PayloadTooLarge(f"This broadcast would store {len(copies)} copies of {size} bytes, "
                              f"{size * len(copies)} bytes in all; the limit is {limit}. Send a smaller payload, "
                              "or narrow it with capability_filter.",
                              field="payload", size=size, copies=len(copies), total=size * len(copies), limit=limit)
    return copies


def _copies_for(request: SendRequest, protocol: Protocol | None, broadcast: Broadcast) -> Iterable[_Copy]:
    sender, wanted = request.sender, request.message.capability_filter or {}
    fields = {**_header_fields(request.message), "broadcast_id": broadcast.broadcast_id}
    converted: dict[tuple, Transformed] = {}
    for target in live_sessions(sender.project).exclude(pk=sender.pk).order_by("pk"):
        broadcast.candidates += 1
        copy = _Copy(request, target, request.message.payload, dict(fields), broadcast)
        features = set(target.supported_features or [])
        mismatch = next((f for f, must in wanted.items() if (f in features) != must), None)
        if mismatch is not None:
            broadcast.skipped.append({**copy.who, "reason": f"capability_filter: {mismatch} "
                                                            f"{'missing' if wanted[mismatch] else 'present'}"})
            continue
        try:
            _convert(copy, protocol, converted)
        except Incompatible as exc:
            broadcast.failed.append({**copy.who, "reason": "incompatible", "detail": exc.message})
            continue
        yield copy


def _header_fields(message: SendIn | BroadcastIn) -> dict[str, Any]:
    return {"priority": Message.Priority[message.priority.upper()].value, "ttl": message.ttl,
            "correlation_id": message.correlation_id, "reply_to": message.reply_to, "thread_id": message.thread_id}


def _threads_found(copies: list[_Copy]) -> None:
    """The thread of each copy that names none and answers a message (reply_to): its parent's, in one statement
    for the round, and only a parent its sender sent or received (a stranger's message id starts a new thread, as
    any reply_to that names no message does). Copies left without one start a thread (`_message`)."""
    asked: dict[uuid.UUID, list[_Copy]] = {}
    for copy in copies:
        if copy.fields["thread_id"] is None and copy.fields["reply_to"]:
            try:
                asked.setdefault(uuid.UUID(copy.fields["reply_to"]), []).append(copy)
            except ValueError:
                continue
    if not asked:
        return
    senders = {copy.sender.pk for answering in asked.values() for copy in answering}
    parents = (Message.objects.filter(pk__in=list(asked))
               .filter(Q(sender_id__in=senders) | Q(recipient_id__in=senders))
               .values_list("pk", "thread_id", "broadcast_id", "sender_id", "recipient_id"))
    for pk, thread_id, broadcast_id, sender_id, recipient_id in parents:
        for copy in asked[pk]:
            if copy.sender.pk in (sender_id, recipient_id):
                copy.fields["thread_id"] = thread_id or broadcast_id or pk


def _convert(copy: _Copy, protocol: Protocol | None, seen: dict[tuple, Transformed]) -> None:
    """Step 3: the payload in the recipient's version of the protocol, before any lock is taken.

    Recipients declaring the same versions get the same conversion, so a broadcast converts
    once per distinct set of versions, not once per recipient.
    """
    if protocol is None:
        return
    declared = tuple((copy.recipient.supported_protocols or {}).get(protocol.name) or ())
    result = seen.get((protocol.pk, declared))
    if result is None:
        result = transform_for(copy.sender.project, protocol, copy.payload, copy.recipient)
        seen[(protocol.pk, declared)] = result
    copy.payload = result.payload
    copy.fields.update(protocol_name=protocol.name, protocol_version=result.protocol.version,
                       transformed_from=result.transformed_from or "", transformed_to=result.transformed_to or "")


def _decided(copies: list[_Copy], locked: dict[uuid.UUID, AgentSession]) -> list[Message]:
    """Step 4, inside the round's transaction, the recipients `locked` (routing.statements) with their queue sizes
    and blocks: each copy's outcome under the blocks and queue limits; returns the messages to insert."""
    now = timezone.now()
    stored: list[Message] = []
    refused = RefusedLetters()
    for copy in copies:
        project, recipient = copy.project, locked.get(copy.recipient.pk)
        if recipient is None:  # a broadcast's recipient deleted since it was listed (purged, its project gone)
            copy.outcome = NotFound("No session with that id or name in this project.", session=str(copy.recipient.pk))
            continue
        if copy.sender.pk in recipient.blocked:
            copy.outcome = Forbidden("The recipient has blocked this session.", recipient_id=str(recipient.id))
            continue
        size = recipient.pending
        message = _message(copy, now + timedelta(microseconds=len(stored)))
        if size >= project.max_queue_size:
            message.state, message.dead_reason, message.dead_at = (
                Message.State.DEAD, Message.DeadReason.QUEUE_FULL, now)
            kept = refused.keep(project, message.payload)  # else too large, or the project has enough of them
            if kept:
                stored.append(message)
            copy.outcome = _queue_full(copy, message, size, kept)
            continue
        stored.append(message)
        recipient.pending = size + 1
        copy.outcome = Accepted(message, size + 1, pushing=_holds_push_connection(recipient, now))
        _warn_near_capacity(project, recipient, size + 1)
    return stored


def _queue_full(copy: _Copy, message: Message, size: int, kept: bool) -> QueueFull:
    capacity = copy.project.max_queue_size
    message_id = str(message.pk) if kept else None
    log.warning("queue_full", extra={"project": copy.project.pk, "session_id": str(copy.recipient.id),
                                     "message_id": message_id, "capacity": capacity, "kept": kept})
    return QueueFull(
        f"The recipient's queue is full ({size} of {capacity}); " + (
            "the message was kept as a dead letter." if kept else "the message was not stored; send it later."),
        message_id=message_id, kept_as_dead_letter=kept, recipient_id=str(copy.recipient.id), queue_size=size,
        capacity=capacity)


def _message(copy: _Copy, created: datetime) -> Message:
    ttl = copy.fields["ttl"]
    link = copy.link
    message = Message(project=copy.project, sender=copy.sender, recipient=copy.recipient, payload=copy.payload,
                      created_at=created, expires_at=created + timedelta(seconds=ttl) if ttl else None,
                      link=link, sender_project=copy.sender.project_id if link else "",
                      sender_human=copy.sender.human, sender_name=copy.sender.name or "", **copy.fields)
    if message.thread_id is None:  # it starts a thread: a broadcast's copies, one between them
        message.thread_id = message.broadcast_id or message.id
    return message


def _holds_push_connection(session: AgentSession, now: datetime) -> bool:
    return session.push_until is not None and session.push_until > now


def _warn_near_capacity(project: Project, recipient: AgentSession, size: int) -> None:
    capacity = project.max_queue_size
    if size >= capacity * NEAR_CAPACITY:
        log.warning("queue_near_capacity", extra={"project": project.pk, "session_id": str(recipient.id),
                                                  "size": size, "capacity": capacity,
                                                  "percent": round(100 * size / capacity)})


def _account(copy: _Copy) -> None:
    """A broadcast copy's outcome, in its broadcast's lists."""
    broadcast, outcome = copy.broadcast, copy.outcome
    assert broadcast is not None
    if isinstance(outcome, Accepted):
        (broadcast.pushing if outcome.pushing else broadcast.queued).append(
            {**copy.who, "message_id": str(outcome.message.id)})
    elif isinstance(outcome, QueueFull):
        broadcast.failed.append({**copy.who, "reason": "queue_full", "message_id": outcome.details["message_id"]})
    else:
        broadcast.skipped.append({**copy.who, "reason": "blocks the sender"})


def _audit_if_cross_project(sender: AgentSession, ref: str) -> None:
    """A session id of another project named without its project (not `project_id/session`, so no link was
    looked for): not found, as any unknown session, and audited as an attempt across the boundary."""
    try:
        target = AgentSession.objects.filter(pk=uuid.UUID(str(ref))).exclude(project=sender.project).first()
    except ValueError:
        return
    if target is not None:
        audit_record("cross_project_send", AuditEvent.Outcome.DENIED, actor_key_id=sender.created_by_key,
                     source_project=sender.project_id, target_project=target.project_id,
                     details={"sender": str(sender.id), "reason": "no_project_link"})
