"""Writes for sessions: open and resume, the acting session and its heartbeat, keep-alive, leaving, blocks.

Faces connect through routing.lifecycle.session_connect, which opens the session here and
queues its unacked mail again on a resume (mail is routing's). Every call that acts as a
session resolves it through `session_acting`: one liveness rule, one heartbeat.
"""

import hmac
import logging
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from broker_site.errors import Conflict, Forbidden, LimitReached, NotFound, ValidationFailed
from projects.audit import audit_done, audit_record
from projects.auth import Principal
from projects.keys import digest
from projects.models import ApiKey, Project
from routing.events import presence_changed, session_ended, session_replaced
from sessions_app.capabilities import clean_capabilities
from sessions_app.kept import kept_sessions, session_changed
from sessions_app.models import (
    ENDED_BY_OPERATOR,
    PROVISIONED,
    SESSION_NAME_PATTERN,
    AgentSession,
    SessionBlock,
)
from sessions_app.selectors import (
    NoActingSession,
    human_session_of,
    live_sessions,
    session_activity,
    session_by_pk,
    session_by_token,
    session_get,
    session_summary,
)

log = logging.getLogger("broker.sessions")
_NAME = re.compile(SESSION_NAME_PATTERN)


@dataclass(frozen=True)
class Connected:
    session: AgentSession
    token: str | None  # only for a new session: shown once
    resumed: bool
    replaced: bool  # a live connection of the same session was taken over
    configured: bool = False  # resumed as the identity the client configured (its X-Session-Token header)

    def as_dict(self) -> dict[str, Any]:
        data = session_summary(self.session)
        data["resumed"] = self.resumed
        if self.token is not None:
            data["session_token"] = self.token
            data["notice"] = "Keep session_token: it is shown once and is needed to resume this session."
        return data


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationFailed("Session names are 1-100 letters, digits, and . _ - starting with a letter.",
                               field="name", constraint=SESSION_NAME_PATTERN)
    try:
        uuid.UUID(name)
    except ValueError:
        return
    raise ValidationFailed("A session name may not look like a session id.", field="name")


def session_open(project: Project, *, actor: str = "", name: str | None = None,
                 capabilities: dict | None = None, session_id: str | None = None, session_token: str | None = None,
                 configured_token: str | None = None, on_resume: Callable[[AgentSession], None]) -> Connected:
    """Connect a new session, or resume one by id or name with its token (routing.lifecycle.session_connect).

    A resume replaces whatever connection the session had: the old one is logged as
    `session_replaced`, sees its connection_epoch move on, and is told so (a WebSocket closes).
    `on_resume(session)` runs inside the resume's transaction, with the session's row locked.

    `configured_token` is the identity the client configured once (the X-Session-Token header):
    a connect that passes no session_token and names no other session resumes that one, so an
    agent told to "connect first" does not leave its configured identity for a new, nameless one.
    Naming another session is an ad-hoc connect, as without the header.
    """
    protocols, features = clean_capabilities(capabilities)
    if name is not None:
        _check_name(name)
    if session_token is None and configured_token is not None:
        configured = session_by_token(project, configured_token)
        if _names(configured, session_id or name):
            connected = _resume(project, str(configured.pk), configured_token, capabilities, protocols, features,
                                on_resume)
            return replace(connected, configured=True)
    if session_id is not None or session_token is not None:
        return _resume(project, session_id or name, session_token, capabilities, protocols, features, on_resume)
    if name is not None and AgentSession.objects.filter(project=project, name=name).exists():
        raise Conflict(f"A session named {name!r} exists; resume it with its session_token, or pick another name.",
                       field="name", suggestions=[f"{name}-2", f"{name}-{secrets.token_hex(2)}"])
    _room_for_one_more(project)
    token = secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            session = AgentSession.objects.create(
                project=project, name=name, token_digest=digest(token), supported_protocols=protocols,
                supported_features=features, created_by_key=actor[:100])
            presence_changed(project.pk, session.pk, session.name, "session_joined")
    except IntegrityError:  # a concurrent connect took the name first
        raise Conflict(f"A session named {name!r} exists.", field="name") from None
    log.info("session_connected", extra={"project": project.pk, "session_id": str(session.id)})
    return Connected(session, token, resumed=False, replaced=False)


def _room_for_one_more(project: Project) -> None:
    """A new live session must fit in the project's max_sessions."""
    live = live_sessions(project).count()
    if live >= project.max_sessions:
        raise LimitReached(f"Project {project.pk} already has {live} live sessions, its limit.",
                           limit=project.max_sessions, current=live)


def _names(session: AgentSession, ref: str | None) -> bool:
    """Whether `ref` (a session id or name, or nothing) leaves `session` as the one meant."""
    if ref is None or ref == session.name:
        return True
    try:
        return uuid.UUID(ref) == session.pk
    except ValueError:
        return False


def session_provision(project: Project, *, name: str, capabilities: dict | None = None,
                      caller: Principal) -> Connected:
    """Make a named session for a client to configure once (`manage.py broker_session create`); its token, once.

    It starts disconnected (reason `provisioned`): nobody is there until its agent's first call,
    which resumes it (session_acting), so peers are not shown a session that is not live. It is
    `provisioned`, so the purge of long-disconnected sessions never takes it: a team's
    configured identity survives any time off; its queue is still bounded by max_queue_size.
    """
    caller.require_role(ApiKey.Role.OPERATOR, "provision sessions")
    if not project.is_active:
        raise Forbidden(f"Project {project.pk} is {project.status}; activate it first.", project_id=project.pk)
    _check_name(name)
    protocols, features = clean_capabilities(capabilities)
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    try:
        with transaction.atomic():
            session = AgentSession.objects.create(
                project=project, name=name, token_digest=digest(token), supported_protocols=protocols,
                supported_features=features, created_by_key=caller.actor[:100], provisioned=True,
                connected_at=now, last_heartbeat_at=now, disconnected_at=now, disconnect_reason=PROVISIONED)
    except IntegrityError:
        raise Conflict(f"A session named {name!r} exists in project {project.pk}; pick another name.",
                       field="name") from None
    audit_done(caller, "session_provision", project.pk, {"session_id": str(session.pk), "name": name})
    return Connected(session, token, resumed=False, replaced=False)


def session_of_human(project: Project, user_name: str, *, on_resume: Callable[[AgentSession], None]) -> AgentSession:
    """The session a person at the operators' dashboard speaks as in `project`, live now: made on first use.

    One per project and user, named `human-<user>` (or with a suffix if an agent has that name),
    so agents see who is there (`kind: human` in list_sessions) and answer it as any sender. It is
    `provisioned` (kept while the person is away) and its token is never shown: the person acts
    through their admin login. Each use is a heartbeat; a use after it timed out resumes it
    through the one resume path (`on_resume`: its unacked mail queued again, peers told).
    """
    if not project.is_active:
        raise Forbidden(f"Project {project.pk} is {project.status}; activate it first.", project_id=project.pk)
    session = human_session_of(project, user_name) or _human_session_made(project, user_name)
    if not session.is_live_at(timezone.now()):
        session, _ = _take_back(session, on_resume, replace_live=False)
    sessions_seen([session])
    return session


def _human_session_made(project: Project, user_name: str) -> AgentSession:
    _room_for_one_more(project)
    base = "human-" + (re.sub(r"[^A-Za-z0-9._-]", "-", user_name)[:80] or "staff")
    now = timezone.now()
    for name in (base, f"{base}-{secrets.token_hex(3)}"):
        try:
            with transaction.atomic():
                session = AgentSession.objects.create(
                    project=project, name=name, human=user_name, token_digest=digest(secrets.token_urlsafe(32)),
                    created_by_key=f"admin:{user_name}"[:100], provisioned=True, connected_at=now,
                    last_heartbeat_at=now)
                presence_changed(project.pk, session.pk, session.name, "session_joined")
            return AgentSession.objects.select_related("project").get(pk=session.pk)
        except IntegrityError:  # an agent holds the name, or the same person's other tab made it first
            made = human_session_of(project, user_name)
            if made is not None:
                return made
    raise Conflict(f"No free session name for {user_name!r} in project {project.pk}.", field="name")


def _resume(project: Project, ref: str | None, token: str | None, capabilities: dict | None,
            protocols: dict, features: list, on_resume: Callable[[AgentSession], None]) -> Connected:
    if not ref:
        raise ValidationFailed("To resume, name the session by session_id or name.", field="session_id")
    if not token:
        raise ValidationFailed("To resume a session, pass its session_token.", field="session_token")
    session = session_get(project, ref)
    if not hmac.compare_digest(session.token_digest, digest(token)):
        audit_record("session_resume", "denied", target_project=project.pk, details={"session_id": str(session.id)})
        raise Forbidden("That session token does not belong to this session.", session=ref)
    changes = {"supported_protocols": protocols, "supported_features": features} if capabilities is not None else {}
    session, was_live = _take_back(session, on_resume, replace_live=True, **changes)
    return Connected(session, None, resumed=True, replaced=was_live)


def _take_back(session: AgentSession, on_resume: Callable[[AgentSession], None], *, replace_live: bool,
               **changes: Any) -> tuple[AgentSession, bool]:
    """The one resume: connection_epoch moves on, the session is live again, `on_resume` runs, and who
    needs to hear it does (the old connection if it was live, else the peers). Returns (session, was_live).

    `replace_live=False` (a call coming back implicitly) leaves a session that is live by the time its
    row is locked as it is: another call brought it back first, and there is no connection to replace.
    Nor does it undo an operator's end that landed between the caller's read and the lock.
    """
    with transaction.atomic():
        # Lock the row so two resumes of one session cannot both think they own it.
        session = AgentSession.objects.select_for_update(no_key=True).select_related("project").get(pk=session.pk)
        now = timezone.now()
        was_live = session.is_live_at(now)
        if not replace_live:
            if was_live:
                return session, True
            if session.disconnect_reason == ENDED_BY_OPERATOR:
                raise _disconnected(session)
        session.connection_epoch += 1
        session.connected_at = now
        session.last_heartbeat_at = now
        session.disconnected_at = None
        session.disconnect_reason = ""
        for field, value in changes.items():
            setattr(session, field, value)
        session.save()
        on_resume(session)
        if was_live:
            session_replaced(session.pk, session.connection_epoch)
        else:
            presence_changed(session.project_id, session.pk, session.name, "session_joined")
    if was_live:
        log.info("session_replaced", extra={"project": session.project_id, "session_id": str(session.id),
                                            "connection_epoch": session.connection_epoch})
    log.info("session_resumed", extra={"project": session.project_id, "session_id": str(session.id),
                                       "implicit": not replace_live})
    return session, was_live


def session_acting(project: Project, *, token: str | None = None, bound_to: uuid.UUID | None = None,
                   configured_token: str | None = None, on_resume: Callable[[AgentSession], None] | None = None,
                   heartbeat: bool = False, leaving: bool = False) -> AgentSession:
    """The session a call acts as, and that call's sign of life: every face resolves sessions here.

    Named by the call's own token (MCP's session_token argument), else by the session a
    session-based MCP connection is bound to (connect_session), else by the identity the client
    configured once (`configured_token`: the X-Session-Token header, on MCP and REST alike).

    A disconnected session (see sessions_app.models) is refused before the call does anything,
    with a pointer to resume; only leaving (`leaving`) may find it so, which makes disconnecting
    twice harmless. The exception is the client's configured identity (given `on_resume`, which
    routing.lifecycle.session_acting passes): a client that configured its session has no step
    in which to say it is back, so its call resumes the session through the one resume path
    (epoch moves on, unacked mail queued again, peers told) and then acts. A session an operator
    ended stays ended until its agent resumes it on purpose (connect_session).

    Every call counts as a heartbeat, written at most every stale_after/4; an explicit
    heartbeat (`heartbeat`) is written at once.
    """
    if token or (bound_to is None and configured_token):
        named = token or configured_token
        session = kept_sessions.read(project.pk, f"token:{digest(named)}", lambda: session_by_token(project, named))
    elif bound_to is not None:
        session = kept_sessions.read(project.pk, f"id:{bound_to}", lambda: session_by_pk(project, bound_to))
    else:
        session = None
    if session is None:
        raise NoActingSession()
    session.project = project  # the caller's row, read with its key (a kept copy may hold an older one)
    now = timezone.now()
    if not session.is_live_at(now):
        if leaving:
            return session
        if on_resume is None or not _configured(session, token, configured_token) \
                or session.disconnect_reason == ENDED_BY_OPERATOR:
            raise _disconnected(session)
        session, _ = _take_back(session, on_resume, replace_live=False)
        now = timezone.now()
    sessions_seen([session], now=now, always=heartbeat)
    return session


def _disconnected(session: AgentSession) -> Conflict:
    return Conflict("This session is disconnected; resume it with connect_session and its token.",
                    session_id=str(session.id), reason=session.disconnect_reason or "timeout")


def _configured(session: AgentSession, token: str | None, configured_token: str | None) -> bool:
    """Whether the call acts as `session` because the client configured it (its own token came in no argument)."""
    return not token and bool(configured_token) and hmac.compare_digest(session.token_digest,
                                                                      digest(configured_token or ""))


def sessions_seen(sessions: list[AgentSession], *, now: datetime | None = None, always: bool = False) -> None:
    """A sign of life from `sessions`: one UPDATE for those not heard from in a quarter of stale_after.

    Status only has to change before stale_after, so a session that calls a thousand times a
    second writes its heartbeat a few times a minute. `always` writes it regardless.
    """
    now = now or timezone.now()
    due = [s for s in sessions if always or (now - s.last_heartbeat_at).total_seconds() >= s.project.stale_after / 4]
    if due:
        # Locked in id order first, as a send round locks its recipients (routing.statements): an UPDATE takes
        # rows in the table's order, and it and a round could each hold a row the other waits for.
        with transaction.atomic():
            ids = list(AgentSession.objects.filter(pk__in=[s.pk for s in due]).order_by("pk")
                       .select_for_update(no_key=True).values_list("pk", flat=True))
            AgentSession.objects.filter(pk__in=ids).update(last_heartbeat_at=now)
        for session in due:
            session.last_heartbeat_at = now
            kept_sessions.seen(session.pk, now)


def session_push_released(session: AgentSession, connection_epoch: int) -> None:
    """A WebSocket let go of the session; a newer connection's lease is left alone."""
    AgentSession.objects.filter(pk=session.pk, connection_epoch=connection_epoch).update(push_until=None)


def session_disconnect(session: AgentSession, *, reason: str = "client",
                       connection_epoch: int | None = None) -> AgentSession:
    """Mark the session gone and tell its project's other sessions.

    With `connection_epoch`, only if that connection still owns the session: a WebSocket that
    closes after a resume took the session over must not disconnect the new connection.
    """
    if session.disconnected_at is not None:
        return session
    now = timezone.now()
    owned = AgentSession.objects.filter(pk=session.pk, disconnected_at__isnull=True)
    if connection_epoch is not None:
        owned = owned.filter(connection_epoch=connection_epoch)
    if owned.update(disconnected_at=now, disconnect_reason=reason[:32], push_until=None):
        session_changed(session.pk)
        session.disconnected_at, session.disconnect_reason = now, reason[:32]
        _announce_gone(session.project_id, session.pk, session.name, reason)
        log.info("session_disconnected", extra={"project": session.project_id, "session_id": str(session.id),
                                                "reason": reason})
    return session


def session_end(session: AgentSession, *, caller: Principal) -> AgentSession:
    """An operator ends a session: disconnected (reason `operator`), its connections and peers told, the trail kept.

    It stays ended until its agent resumes it on purpose: a configured client's next call does not bring it back."""
    caller.require_role(ApiKey.Role.OPERATOR, "end sessions")
    session_disconnect(session, reason=ENDED_BY_OPERATOR)
    audit_done(caller, "session_end", session.project_id, {"session_id": str(session.pk)})
    return session


def sessions_time_out(now: datetime | None = None, batch: int = 500) -> int:
    """Mark sessions silent past their project's disconnect_after as gone, and say so to their peers.

    Status is derived from the last heartbeat anyway; this pass (run by the sweeper) is what
    turns a silent session into a `session_left` event. Several sweepers at once are safe: the
    conditional UPDATE lets exactly one of them publish each event.
    """
    now = now or timezone.now()
    shortest = Project.objects.order_by("disconnect_after").values_list("disconnect_after", flat=True).first()
    if shortest is None:
        return 0
    candidates = (AgentSession.objects.filter(disconnected_at__isnull=True,
                                              last_heartbeat_at__lt=now - timedelta(seconds=shortest))
                  .select_related("project")[:batch])
    timed_out = 0
    for session in candidates:
        if session.is_live_at(now):
            continue
        if AgentSession.objects.filter(pk=session.pk, disconnected_at__isnull=True,
                                       last_heartbeat_at=session.last_heartbeat_at).update(
                disconnected_at=now, disconnect_reason="timeout", push_until=None):
            session_changed(session.pk)
            _announce_gone(session.project_id, session.pk, session.name, "timeout")
            timed_out += 1
    if timed_out:
        log.info("sessions_timed_out", extra={"count": timed_out})
    return timed_out


def sessions_purge(before: datetime, batch: int = 500) -> int:
    """Delete sessions disconnected before `before`, one batch per call (the sweeper's pass); returns how many.

    What goes with a session: its blocks, and its inbox, including any mail still waiting for
    it (a session gone that long is not coming back to resume; keeping its queue for ever is
    what let storage grow without bound). Messages it sent stay, without a sender. A provisioned
    session (session_provision) is never purged: it is a team's standing identity.

    Race: a resume may take a session back just as it is chosen. The delete re-checks that the
    session is still disconnected before `before`, so a session resumed meanwhile stays.
    """
    due = AgentSession.objects.filter(disconnected_at__lt=before, provisioned=False)  # index agentsession_purge_due
    old = list(due.order_by("disconnected_at").values_list("pk", flat=True)[:batch])
    if not old:
        return 0
    with transaction.atomic():
        gone = due.filter(pk__in=old)
        count = gone.count()
        gone.delete()
    log.info("sessions_purged", extra={"count": count})
    return count


def sessions_end_all(project: Project, *, reason: str) -> int:
    """Disconnect every session of `project` not yet marked gone, and announce each (after commit)."""
    leaving = list(AgentSession.objects.filter(project=project, disconnected_at__isnull=True).values_list("pk", "name"))
    AgentSession.objects.filter(pk__in=[pk for pk, _ in leaving]).update(
        disconnected_at=timezone.now(), disconnect_reason=reason[:32], push_until=None)
    for pk, name in leaving:
        session_changed(pk)
        _announce_gone(project.pk, pk, name, reason)
    return len(leaving)


def _announce_gone(project_id: str, session_id: uuid.UUID, name: str | None, reason: str) -> None:
    """After commit: the session's own connections close (session_ended), its peers hear session_left."""
    session_ended(session_id, reason[:32])
    presence_changed(project_id, session_id, name, "session_left")


def session_status_set(session: AgentSession, *, state: str, summary: str) -> AgentSession:
    """What the session says it is doing (`state`: working, idle, blocked or waiting; a short summary): kept on
    the session for list_sessions and the dashboard, and told to the project's live sessions (session_status)."""
    now = timezone.now()
    AgentSession.objects.filter(pk=session.pk).update(activity_state=state, activity_summary=summary[:200],
                                                      activity_at=now)
    session_changed(session.pk)
    session.activity_state, session.activity_summary, session.activity_at = state, summary[:200], now
    presence_changed(session.project_id, session.pk, session.name, "session_status",
                     activity=session_activity(session))
    return session


def session_block(blocker: AgentSession, target_ref: str) -> AgentSession:
    target = session_get(blocker.project, target_ref)
    if target.pk == blocker.pk:
        raise ValidationFailed("A session cannot block itself.", field="session")
    SessionBlock.objects.get_or_create(blocker=blocker, blocked=target)
    return target


def session_unblock(blocker: AgentSession, target_ref: str) -> AgentSession:
    target = session_get(blocker.project, target_ref)
    deleted, _ = SessionBlock.objects.filter(blocker=blocker, blocked=target).delete()
    if not deleted:
        raise NotFound("That session is not blocked.", session=target_ref)
    return target
