"""Cross-project links: asking, answering, pausing and ending consent, the one path every face calls.

A link is requested by an admin of project A naming project B, with terms: the protocols
allowed across it (names, or names with a version range; none named: any message), a rate a
minute each way, the largest message, and a direction (both ways, or A to B only). An admin
of B accepts it (and may narrow the terms, which A then sees) or declines it; either side may
suspend it (and the side that suspended may resume it) or revoke it, alone, at any time. A
request not answered within BROKER_LINK_REQUEST_TTL_SECONDS expires.

Asking never tells whether B exists: any well-formed project id may be asked, and the answer
is the same pending request either way (one for a project that does not exist simply expires).
So a project a requester could not see cannot be probed, and B learns of A only from its request.

Every round of messages across a link reads the link's state in its own transaction
(routing.statements.recipients_locked), so a suspension or revocation holds in every process from the
moment it commits.
"""

import logging
import re
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from broker_site.errors import Conflict, Forbidden, LimitReached, NotFound, ProjectBoundary, ValidationFailed
from projects.audit import audit_done
from projects.auth import CLI, Caller, Principal
from projects.models import LIVE_LINK_STATES, PROJECT_ID_PATTERN, ApiKey, Project, ProjectLink
from protocols.versions import is_protocol_name, parse_range

State, Direction = ProjectLink.State, ProjectLink.Direction
_PROJECT_ID = re.compile(PROJECT_ID_PATTERN)
# Who may move a link from one state to the next: "source", "target", "either", and the states it leaves.
ACTIONS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "decline": ("target", (State.PENDING,), State.DECLINED),
    "suspend": ("either", (State.ACTIVE,), State.SUSPENDED),
    "resume": ("suspender", (State.SUSPENDED,), State.ACTIVE),
    "revoke": ("either", tuple(LIVE_LINK_STATES), State.REVOKED),
}
OPERATOR_SIDE = "(operator)"  # suspended_by when staff suspended a link, not one of its projects


def pair_of(a: str, b: str) -> str:
    return "|".join(sorted((a, b)))


def link_active_between(project: Project, other_project_id: str) -> ProjectLink | None:
    """The active link between `project` and another project, if there is one (a read; routing.crossing keeps it
    a moment, and the round's own read decides)."""
    return ProjectLink.objects.filter(pair=pair_of(project.pk, other_project_id), state=State.ACTIVE).first()


def may_start(link: ProjectLink, project_id: str) -> bool:
    """Whether `project_id`'s side may start a conversation over the link (a one-way link's target only answers)."""
    return link.direction == Direction.BOTH or link.source_id == project_id


def no_link(project_id: str) -> ProjectBoundary:
    """The one answer for another project without an active link that serves: it never says whether the project
    or its sessions exist."""
    return ProjectBoundary("No active link between these projects lets this session reach that one; their admins "
                           "can make one (request_project_link).", target_project_id=str(project_id)[:64])


def link_request(project: Project, target_project_id: str, terms: dict[str, Any], *,
                 caller: Principal = CLI) -> ProjectLink:
    """Ask `target_project_id` to consent to a link with `project`, on `terms`; the request waits for its answer.

    Refused: the caller is not an admin; the id is this project's own or not a project id; this
    project already has BROKER_MAX_PENDING_LINKS requests waiting; a link of the pair is pending,
    active or suspended (the answer says which, and how to go on: that link is this project's own).
    """
    caller.require_role(ApiKey.Role.ADMIN, "request project links")
    if not isinstance(target_project_id, str) or not _PROJECT_ID.match(target_project_id):
        raise ValidationFailed("target_project_id is not a project id.", field="target_project_id",
                               constraint=PROJECT_ID_PATTERN)
    if target_project_id == project.pk:
        raise ValidationFailed("A project needs no link to itself.", field="target_project_id")
    pair = pair_of(project.pk, target_project_id)
    existing = ProjectLink.objects.filter(pair=pair, state__in=LIVE_LINK_STATES).first()
    if existing is not None:
        raise _already_linked(existing, project)
    waiting = ProjectLink.objects.filter(source=project, state=State.PENDING).count()
    if waiting >= settings.BROKER["MAX_PENDING_LINKS"]:
        raise LimitReached(f"This project has {waiting} link requests waiting for an answer; revoke one first.",
                           limit=settings.BROKER["MAX_PENDING_LINKS"])
    now = timezone.now()
    normal = terms_normalized(terms)
    link = ProjectLink(source=project, target_project_id=target_project_id, pair=pair, requested=normal,
                       requested_by=caller.actor, requested_at=now,
                       expires_at=now + timedelta(seconds=settings.BROKER["LINK_REQUEST_TTL_SECONDS"]), **normal)
    try:
        with transaction.atomic():
            link.save(force_insert=True)
    except IntegrityError:  # a concurrent request of the same pair came first
        raise _already_linked(ProjectLink.objects.filter(pair=pair, state__in=LIVE_LINK_STATES).first(),
                              project) from None
    audit_done(caller, "link_request", target_project_id, {"link_id": str(link.pk), "terms": normal})
    return link


def _already_linked(link: ProjectLink | None, project: Project) -> Conflict:
    if link is None:
        return Conflict("A link between these projects is being made; list your links.")
    hint = ("accept it" if link.state == State.PENDING and link.source_id != project.pk
            else "revoke it first to ask again on other terms")
    return Conflict(f"These projects already have a {link.state} link; {hint}.", link_id=str(link.pk),
                    state=link.state)


def link_accept(project: Project, link_id: str, narrowed: dict[str, Any], *, caller: Principal = CLI) -> ProjectLink:
    """Consent, as the project asked, to a pending link; terms given narrow the requested ones (never widen)."""
    caller.require_role(ApiKey.Role.ADMIN, "accept project links")
    _expire_if_due(link_id)
    with transaction.atomic():
        link = _party_link(project, link_id, lock=True)
        if link.target_project_id != project.pk:
            raise Forbidden("Only the project that was asked can accept a link.", link_id=str(link.pk))
        if link.state != State.PENDING:
            raise Conflict(f"This link is {link.state}; only a pending request can be accepted.",
                           link_id=str(link.pk), state=link.state)
        terms = terms_narrowed(link.requested, narrowed)
        for name, value in terms.items():
            setattr(link, name, value)
        link.state, link.answered_by, link.answered_at = State.ACTIVE, caller.actor, timezone.now()
        link.save()
    audit_done(caller, "link_accept", link.source_id,
               {"link_id": str(link.pk), "terms": terms, "narrowed": terms != link.requested})
    return link


def link_manage(project: Project | None, link_id: str, action: str, *, caller: Principal = CLI) -> ProjectLink:
    """Decline, suspend, resume or revoke a link as one of its projects (`project`), or as staff (None).

    Effective at once everywhere: routing reads the link's state for every message across it.
    Messages it accepted before stay accepted and are delivered.
    """
    if action not in ACTIONS:
        raise ValidationFailed(f"Unknown action {action!r}.", field="action", choices=sorted(ACTIONS))
    caller.require_role(ApiKey.Role.OPERATOR if project is None else ApiKey.Role.ADMIN, "manage project links")
    who, leaves, becomes = ACTIONS[action]
    _expire_if_due(link_id)
    with transaction.atomic():
        link = _party_link(project, link_id, lock=True)
        side = OPERATOR_SIDE if project is None else project.pk
        if who == "target" and side != link.target_project_id:
            raise Forbidden("Only the project that was asked can decline; the asking one revokes its request.",
                            link_id=str(link.pk))
        if who == "suspender" and side != link.suspended_by:
            raise Forbidden("Only the side that suspended this link can resume it.", link_id=str(link.pk),
                            suspended_by="operator" if link.suspended_by == OPERATOR_SIDE else "the other project")
        if link.state not in leaves:
            raise Conflict(f"This link is {link.state}; {action} needs it {' or '.join(leaves)}.",
                           link_id=str(link.pk), state=link.state)
        link.state = becomes
        now = timezone.now()
        if action == "decline":
            link.answered_by, link.answered_at = caller.actor, now
        elif action == "suspend":
            link.suspended_by = side
        elif action == "resume":
            link.suspended_by = ""
        else:
            link.ended_by, link.ended_at = caller.actor, now
        link.save()
    audit_done(caller, f"link_{action}", link.other_side(project.pk) if project else link.target_project_id,
               {"link_id": str(link.pk), "state": link.state})
    return link


def acting_side(caller: Caller, link_id: str) -> Project | None:
    """As whom a caller manages a link: its own project, or (an operator, on a link its project is not a side
    of) as staff, None, the way the dashboard does."""
    project = caller.project
    if caller.is_operator and not ProjectLink.objects.filter(
            Q(source=project) | Q(target_project_id=project.pk), pk=link_id_parsed(link_id)).exists():
        return None
    return project


def _party_link(project: Project | None, link_id: str, *, lock: bool = False) -> ProjectLink:
    """The link `link_id` names, if `project` is one of its two sides (any link for staff, None)."""
    links = ProjectLink.objects.filter(pk=link_id_parsed(link_id))
    if project is not None:
        links = links.filter(Q(source=project) | Q(target_project_id=project.pk))
    link = (links.select_for_update() if lock else links).first()
    if link is None:
        raise NotFound("No link with that id that this project is a side of.", link_id=str(link_id))
    return link


def link_id_parsed(link_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(link_id))
    except ValueError:
        raise ValidationFailed("That is not a link id.", field="link_id") from None


def _expire_if_due(link_id: str) -> None:
    """A request past its time expires before anyone answers it, in a statement of its own: an answer then
    refused (the request is expired) does not undo the expiry with its transaction."""
    ProjectLink.objects.filter(pk=link_id_parsed(link_id), state=State.PENDING, expires_at__lte=timezone.now()).update(
        state=State.EXPIRED, ended_at=F("expires_at"))


def links_expire(now: datetime, batch: int = 1000) -> int:
    """The sweeper's pass: pending requests past their time become expired (a batch per pass)."""
    due = list(ProjectLink.objects.filter(state=State.PENDING, expires_at__lte=now)
               .order_by("expires_at").values_list("pk", flat=True)[:batch])
    # Race: an accept between the read and here; only a row still pending expires.
    return ProjectLink.objects.filter(pk__in=due, state=State.PENDING).update(state=State.EXPIRED, ended_at=now)


def links_forget_project(project_id: str) -> int:
    """A deleted project's links end with it: its id could be taken again by a stranger, who must not
    inherit the consent (the links it asked for go with it by cascade; the ones it was asked for, here)."""
    deleted, _ = ProjectLink.objects.filter(target_project_id=project_id).delete()
    return deleted


# Traffic

log = logging.getLogger("broker.links")
TRAFFIC_COUNTERS = ("sent", "delivered", "refused_inactive")
TRAFFIC_FLUSH_SECONDS = 1.0


class _Traffic:
    """A process's counts of messages across links (sent, delivered, refused while not serving), written to the
    links at most once a TRAFFIC_FLUSH_SECONDS, and at once when someone reads them here.

    Counted in the hot path of every message across, so not as an UPDATE of the link's row per round: rounds
    of every process would queue on that one row, and on PostgreSQL pay a commit each. A process that dies
    loses at most its last second of counts; the messages themselves are never at stake.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: Counter = Counter()  # (link id, counter) -> count
        self.flushed_at = 0.0

    def add(self, counter: str, counts: Counter) -> None:
        assert counter in TRAFFIC_COUNTERS
        if not counts:
            return
        with self.lock:
            for link_id, n in counts.items():
                self.pending[(link_id, counter)] += n
            due = time.monotonic() - self.flushed_at >= TRAFFIC_FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            pending, self.pending, self.flushed_at = self.pending, Counter(), time.monotonic()
        by_link: dict[Any, dict[str, int]] = {}
        for (link_id, counter), n in pending.items():
            by_link.setdefault(link_id, {})[counter] = n
        try:
            for link_id, counts in by_link.items():
                ProjectLink.objects.filter(pk=link_id).update(**{c: F(c) + n for c, n in counts.items()})
        except Exception as exc:  # kept for the next flush rather than lost
            log.warning("link_traffic_unwritten", extra={"error": str(exc)})
            with self.lock:
                self.pending.update(pending)


traffic = _Traffic()


def traffic_counted(counter: str, counts: Counter) -> None:
    """Count messages across links (TRAFFIC_COUNTERS); written within a second, or by the next reader here."""
    traffic.add(counter, counts)


def traffic_flushed() -> None:
    """This process's counts written to the links, before anything reads them (another process's follow within
    a second of its next message, or its sweeper's next pass)."""
    traffic.flush()


# Terms

def terms_normalized(terms: dict[str, Any]) -> dict[str, Any]:
    """Requested terms as stored: protocols parsed (`name` or `name@range`), unset ones at the broker's defaults."""
    protocols = terms.get("allowed_protocols")
    return {
        "allowed_protocols": None if protocols is None else _protocols_parsed(protocols),
        "rate_limit_per_minute": terms.get("rate_limit_per_minute") or settings.BROKER["LINK_RATE_PER_MINUTE"],
        "max_message_bytes": terms.get("max_message_bytes") or settings.BROKER["LINK_MAX_MESSAGE_BYTES"],
        "direction": terms.get("direction") or Direction.BOTH,
    }


def _protocols_parsed(entries: list[str]) -> list[dict[str, str | None]]:
    parsed: dict[tuple, dict[str, str | None]] = {}
    for index, entry in enumerate(entries):
        name, _, version_range = entry.partition("@")
        where = f"allowed_protocols[{index}]"
        if not is_protocol_name(name):
            raise ValidationFailed(f"{where}: {name!r} is not a protocol name.", field=where)
        if version_range:
            parse_range(version_range, field=where)
        parsed[(name, version_range)] = {"name": name, "version_range": version_range or None}
    return list(parsed.values())


def terms_narrowed(requested: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The terms an accept sets: the requested ones, with each term given replacing it if it is narrower."""
    terms = dict(requested)
    problems: dict[str, list[str]] = {}
    rate = given.get("rate_limit_per_minute")
    if rate is not None:
        if rate > requested["rate_limit_per_minute"]:
            problems["rate_limit_per_minute"] = [f"at most the requested {requested['rate_limit_per_minute']}"]
        terms["rate_limit_per_minute"] = rate
    size = given.get("max_message_bytes")
    if size is not None:
        if size > requested["max_message_bytes"]:
            problems["max_message_bytes"] = [f"at most the requested {requested['max_message_bytes']}"]
        terms["max_message_bytes"] = size
    direction = given.get("direction")
    if direction is not None:
        if direction == Direction.BOTH and requested["direction"] != Direction.BOTH:
            problems["direction"] = ["the request is source_to_target only"]
        terms["direction"] = direction
    if given.get("allowed_protocols") is not None:
        narrowed = _protocols_parsed(given["allowed_protocols"])
        wider = [entry for entry in narrowed if not _within(entry, requested["allowed_protocols"])]
        if wider:
            problems["allowed_protocols"] = [f"{e['name']}@{e['version_range'] or '*'} was not requested"
                                             for e in wider]
        terms["allowed_protocols"] = narrowed
    if problems:
        raise ValidationFailed("An accept may narrow the requested terms, not widen them.", fields=problems)
    return terms


def _within(entry: dict[str, str | None], requested: list[dict[str, str | None]] | None) -> bool:
    """Whether a protocol entry is inside what was requested: the same name, with any version requested
    or the very same range (ranges are not compared for containment)."""
    if requested is None:
        return True
    return any(r["name"] == entry["name"] and r["version_range"] in (None, entry["version_range"]) for r in requested)


def protocol_allowed(link: ProjectLink, name: str | None, version: str | None) -> bool:
    """Whether a message of this protocol (None: free-form) may cross the link."""
    if link.allowed_protocols is None:
        return True
    if name is None:
        return False
    return any(entry["name"] == name and (entry["version_range"] is None or parse_range(entry["version_range"])(version))
               for entry in link.allowed_protocols)
