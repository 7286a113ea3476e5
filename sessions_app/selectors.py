"""Reads for sessions, always scoped by project, and their wire shape."""

import uuid
from typing import Any

from django.db.models import QuerySet

from broker_site.errors import NotFound, Unauthorized, ValidationFailed
from projects.keys import digest
from projects.models import Project
from sessions_app.models import LIVE, AgentSession

STATUS_FILTERS = ("active", "stale", "disconnected", LIVE, "all")


def sessions_of(project: Project, status: str = "all") -> QuerySet[AgentSession]:
    if status not in STATUS_FILTERS:
        raise ValidationFailed("Unknown status filter.", field="status_filter", allowed=list(STATUS_FILTERS))
    return (AgentSession.objects.filter(project=project).filter(AgentSession.status_q(project, status))
            .select_related("project"))


def sessions_listed(project: Project, status_filter: str, include_capabilities: bool,
                    limit: int = 1000) -> dict[str, Any]:
    """The answer to a listing: the project's sessions with that status (at most `limit`), as every face shows them."""
    sessions = [session_summary(s, include_capabilities=include_capabilities)
                for s in sessions_of(project, status_filter)[:limit]]
    return {"sessions": sessions, "count": len(sessions), "status_filter": status_filter}


def live_sessions(project: Project) -> QuerySet[AgentSession]:
    """Sessions that are active or stale: connected, and not yet timed out."""
    return sessions_of(project, LIVE)


def session_get(project: Project, ref: str) -> AgentSession:
    """A session of `project` by its id or its name; another project's session is simply not found."""
    if not isinstance(ref, str) or not ref or len(ref) > 100:
        raise ValidationFailed("A session is named by its id or its name.", field="session")
    sessions = AgentSession.objects.filter(project=project).select_related("project")
    try:
        session = sessions.filter(pk=uuid.UUID(ref)).first()
    except ValueError:
        session = sessions.filter(name=ref).first()
    if session is None:
        raise NotFound("No session with that id or name in this project.", session=ref)
    return session


class NoActingSession(Unauthorized):
    """A call that acts as a session named none (no token, no bound connection)."""

    default_message = "This call acts as a session: connect first and pass its session token."

    def __init__(self) -> None:
        super().__init__(hint="connect_session (POST /api/v1/sessions/) returns session_token; "
                              "pass it as X-Session-Token or session_token")


def session_by_token(project: Project, token: str) -> AgentSession:
    """The session a session token belongs to, inside `project` only."""
    if len(token) > 200:
        raise Unauthorized("Unknown session token.", hint="connect or resume a session to get a valid token")
    # Looked up by digest: an index hit whose timing reveals nothing, since an attacker cannot
    # steer the SHA-256 of a guess toward a stored one.
    session = AgentSession.objects.filter(project=project, token_digest=digest(token)).first()
    if session is None:
        raise Unauthorized("Unknown session token.", hint="connect or resume a session to get a valid token")
    return _in(project, session)


def session_by_pk(project: Project, pk: uuid.UUID) -> AgentSession | None:
    """A session of `project` by its id, or None (the connection bound to it outlived it)."""
    session = AgentSession.objects.filter(project=project, pk=pk).first()
    return _in(project, session) if session is not None else None


def _in(project: Project, session: AgentSession) -> AgentSession:
    # The caller's project row (read with its key) is the session's: no second read of it per call.
    session.project = project
    return session


def human_session_of(project: Project, user_name: str) -> AgentSession | None:
    """The session a person at the dashboard speaks as in `project` (sessions_app.services.session_of_human)."""
    return AgentSession.objects.filter(project=project, human=user_name).select_related("project").first()


def session_counts(project: Project) -> dict[str, int]:
    return {status: sessions_of(project, status).count() for status in AgentSession.Status.values}


def session_summary(session: AgentSession, *, include_capabilities: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "session_id": str(session.id),
        "name": session.name,
        "status": session.status,
        "connected_at": session.connected_at.isoformat(),
        "last_heartbeat_at": session.last_heartbeat_at.isoformat(),
    }
    if session.human:  # a person at the operators' dashboard, not an agent
        data.update(kind="human", human=session.human)
    if session.activity_at is not None:  # what it said it is doing (set_status)
        data["activity"] = session_activity(session)
    if include_capabilities:
        data["capabilities"] = {"supported_protocols": session.supported_protocols,
                                "supported_features": session.supported_features}
    return data


def session_activity(session: AgentSession) -> dict[str, Any]:
    return {"state": session.activity_state, "summary": session.activity_summary,
            "at": session.activity_at.isoformat() if session.activity_at else None}


def blocked_session_ids(session: AgentSession) -> list[str]:
    return [str(pk) for pk in session.blocks.values_list("blocked_id", flat=True)]
