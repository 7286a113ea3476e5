"""Messages across projects: the link a message crosses, and the terms it must meet.

A recipient in another project is named `project_id/session` (its session id or name), or by
any recipient name with `target_project_id` (sessions_app.linked.session_address). Such a send goes
through the one send engine (routing.sending) like any other; this module is its step-1 part
(`route_checked`, before any round) and its accounting after the round (`crossings_recorded`):

- the pair of projects has an active link (projects.links), else `project_boundary`, the same
  answer whether or not the target project or session exists;
- the link's direction lets the sender's project send (on a one-way link, the target side may
  still answer a message it received over the link, with reply_to naming it);
- its protocol is on the link's list, its payload within the link's size, and the sender's
  project within the link's rate this minute (each direction its own count, in the shared
  cache: Redis when configured, so every process counts together).

Each refusal is counted on the link (refused_<reason>) and audited; each message accepted is
audited with its id and counted (`sent`), and its first delivery counted (`delivered`) when it is
claimed. The message's `project` is the recipient's (its queue, limits and dead letters), and it
carries the link and the sender's project, so the recipient can answer `sender_project_id/sender_id`.
"""

import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.db.models import F

from broker_site.errors import BrokerError, PayloadTooLarge, ProjectBoundary, RateLimited
from broker_site.workers import NeedsDatabase
from projects.audit import audit_record
from projects.links import link_active_between, may_start, no_link, pair_of, protocol_allowed, traffic_counted
from projects.models import AuditEvent, Project, ProjectLink
from projects.ratelimit import WINDOW_SECONDS, window_share
from protocols.models import Protocol
from routing.models import Message
from routing.statements import AuditRow
from sessions_app.linked import session_address

log = logging.getLogger("broker.routing")
SEND = "cross_project_send"


@dataclass(frozen=True)
class Route:
    """Where a 1:1 message goes: the recipient's project, the session's id or name in it, the link it crosses."""

    project: Project
    ref: str
    link: ProjectLink | None = None


def route_checked(sender, recipient_id: str, target_project_id: str | None, reply_to: str,
                  protocol: Protocol | None, size: int, *, in_place: bool = False) -> Route:
    """Step 1 for a 1:1 send: its route, the link's terms checked if it leaves the sender's project.

    `in_place` (on the event loop): NeedsDatabase before the first step that reads or writes the
    database (a link not kept, a one-way link's reply to look up, a refusal to count and audit, the
    link's rate to reserve from the shared cache), so a message over a link the process keeps
    takes no thread of its own."""
    project_id, ref = session_address(sender.project_id, recipient_id, target_project_id)
    if project_id == sender.project_id:
        return Route(sender.project, ref)
    link, target = _serving(sender.project, project_id, in_place)
    attempt = _Attempt(sender, project_id, ref, protocol, in_place)
    if link is None or target is None:
        attempt.refused_no_link()
    assert link is not None and target is not None
    if not may_start(link, sender.project_id) and not _answers_over(link, sender, reply_to, in_place):
        attempt.refused(link, "direction", ProjectBoundary(
            "This link carries messages the other way only; this side may only answer a message it received "
            "over it (reply_to).", link_id=str(link.pk), reason="direction"))
    if not protocol_allowed(link, protocol.name if protocol else None, protocol.version if protocol else None):
        attempt.refused(link, "protocol", ProjectBoundary(
            "The link does not allow this protocol" + ("." if protocol else " (it allows protocol messages only)."),
            link_id=str(link.pk), reason="protocol", allowed_protocols=link.allowed_protocols))
    if size > link.max_message_bytes:
        attempt.refused(link, "size", PayloadTooLarge(
            f"payload is {size} bytes; this link carries at most {link.max_message_bytes}.", field="payload",
            link_id=str(link.pk), size=size, limit=link.max_message_bytes))
    _rate_take(link, sender.project_id, attempt, in_place)
    return Route(target, ref, link)


# Step 1's reading of a pair's active link and the other project, kept per process for a moment (it was the
# costliest part of a message across: bench/link_latency.py). The round re-reads the link's state with the
# projects' (routing.statements.recipients_locked), and that read decides. A link's terms do not change once it is
# active, so a kept link is only ever out of date in its state, which the round sees; it is then forgotten.
# "No link" is never kept: a link accepted a moment ago serves at once. One case costs a retry: a link revoked
# and replaced by a new one within LINK_KEPT_SECONDS, where a process still keeping the old one refuses its
# next message as `inactive` and reads the new link for the one after.
LINK_KEPT_SECONDS = 2.0
_KEPT_MAX = 10_000
_kept: dict[str, tuple[float, ProjectLink, Project]] = {}


def _serving(project: Project, other_id: str, in_place: bool) -> tuple[ProjectLink | None, Project | None]:
    now = time.monotonic()
    kept = _kept.get(other_key := f"{project.pk}|{other_id}")
    if kept is not None and kept[0] > now:
        return kept[1], kept[2]
    if in_place:
        raise NeedsDatabase
    link = link_active_between(project, other_id)
    target = Project.objects.filter(pk=other_id, status=Project.Status.ACTIVE).first() if link else None
    if link is not None and target is not None:
        if len(_kept) >= _KEPT_MAX:
            _kept.clear()
        _kept[other_key] = (now + LINK_KEPT_SECONDS, link, target)
    return link, target


def kept_links_forgotten() -> None:
    """Every kept link forgotten (a test's database goes with the test, and its links with it)."""
    _kept.clear()


def link_forgotten(link: ProjectLink) -> None:
    """The round found `link` no longer active: step 1 reads it afresh next time."""
    # list(): a copy taken at once (under the GIL), as other threads may add to the table meanwhile.
    for key in [key for key, (_, kept, _) in list(_kept.items()) if kept.pk == link.pk]:
        _kept.pop(key, None)


def _answers_over(link: ProjectLink, sender, reply_to: str, in_place: bool) -> bool:
    if in_place:
        raise NeedsDatabase
    try:
        asked = uuid.UUID(reply_to)
    except ValueError:
        return False
    return Message.objects.filter(pk=asked, recipient=sender, link=link).exists()


def _rate_take(link: ProjectLink, from_project: str, attempt: "_Attempt", in_place: bool) -> None:
    taken = window_share(f"linkrate:{link.pk}:{from_project}").take_now(link.rate_limit_per_minute, refill=not in_place)
    if taken is None:
        raise NeedsDatabase
    if not taken:
        now = time.time()
        attempt.refused(link, "rate", RateLimited(
            f"This link carries at most {link.rate_limit_per_minute} messages a minute each way.",
            link_id=str(link.pk), limit=link.rate_limit_per_minute,
            retry_after=max(1, int(WINDOW_SECONDS - now % WINDOW_SECONDS))))


@dataclass(frozen=True)
class _Attempt:
    sender: Any
    project_id: str
    ref: str
    protocol: Protocol | None
    in_place: bool

    def refused_no_link(self) -> None:
        """No active link serves the pair: counted on its latest link when there is one (pending, suspended or
        ended), so its projects see what it refused; the answer is the same either way."""
        if self.in_place:
            raise NeedsDatabase
        latest = (ProjectLink.objects.filter(pair=pair_of(self.sender.project_id, self.project_id))
                  .order_by("-requested_at").first())
        self.refused(latest, "inactive" if latest else "no_link", no_link(self.project_id))

    def refused(self, link: ProjectLink | None, reason: str, error: BrokerError) -> None:
        """Count and audit the refusal, then raise it."""
        if self.in_place:
            raise NeedsDatabase
        if link is not None:
            ProjectLink.objects.filter(pk=link.pk).update(**{f"refused_{reason}": F(f"refused_{reason}") + 1})
        audit_record(SEND, AuditEvent.Outcome.DENIED, actor_key_id=self.sender.created_by_key,
                     source_project=self.sender.project_id, target_project=self.project_id[:64],
                     details={**_details(self.sender, self.ref, self.protocol, link), "reason": reason})
        raise error


def _details(sender, ref: str, protocol: Protocol | None, link: ProjectLink | None) -> dict[str, Any]:
    details: dict[str, Any] = {"sender": str(sender.id), "recipient": ref[:100],
                               "protocol": f"{protocol.name}@{protocol.version}" if protocol else None}
    if link is not None:
        details["link_id"] = str(link.pk)
    return details


@dataclass
class Traffic:
    """A round's crossings: their audit events (inserted with its messages), and what it sent across links and
    refused because a link stopped serving (counted once it committed)."""

    events: list[AuditRow] = field(default_factory=list)
    sent: Counter = field(default_factory=Counter)
    inactive: Counter = field(default_factory=Counter)

    def counted(self) -> None:
        """After the round's commit (projects.links.traffic_counted; a link's row is never written in a round)."""
        traffic_counted("sent", self.sent)
        traffic_counted("refused_inactive", self.inactive)


def crossings_recorded(crossed: list[tuple[Any, Route, Any]]) -> Traffic:
    """In a round's transaction, once its outcomes are decided: the audit event of every cross-project send in it,
    which the round inserts with its messages (routing.statements.rows_inserted), so a message across is stored if
    and only if it is audited; and what to count on the links.

    `crossed` holds (request, route, outcome) for each 1:1 request that left its project.
    """
    traffic = Traffic()
    if not crossed:
        return traffic
    for request, route, outcome in crossed:
        details = {**_details(request.sender, route.ref, request.protocol, route.link)}
        if isinstance(outcome, BrokerError):
            details.update(reason=outcome.details.get("reason") or outcome.code,
                           **({"message_id": outcome.details["message_id"]} if outcome.details.get("message_id")
                              else {}))
            if details["reason"] == "inactive":
                traffic.inactive[route.link.pk] += 1
        else:
            details["message_id"] = str(outcome.message.id)
            traffic.sent[route.link.pk] += 1
        traffic.events.append(AuditRow(SEND, AuditEvent.Outcome.DENIED if isinstance(outcome, BrokerError)
                                       else AuditEvent.Outcome.SUCCESS, request.sender.created_by_key[:100],
                                       request.sender.project_id, route.project.pk, details))
    return traffic


def deliveries_counted(messages: list[Message], *, undone: bool = False) -> None:
    """First deliveries of messages that came over a link, counted on it (the claim's caller calls this); with
    `undone`, the claims of them that were put back (nobody saw them), so the next claim counts once."""
    firsts = Counter(m.link_id for m in messages if m.link_id is not None and m.attempts == 1)
    traffic_counted("delivered", Counter({link_id: -n for link_id, n in firsts.items()}) if undone else firsts)
