"""What a project sees of another over an active link: the other's live sessions, as much as it shows links.

A session anywhere is named `project_id/session` (its id or name), or by its id or name alone
inside its own project (`session_address`). A project whose side of an active link may start
conversations (routing.crossing: both ways, or the asking side of a one-way link) may list the
other project's live sessions and negotiate with them. The other project chooses how much it
shows (Project.link_visibility): names and capabilities (the default), names only, or nothing.
Status and times are never shown across, and disconnected sessions are not there at all.

No link, or a link the viewer may only answer over: the same `project_boundary` a send across
no link gets, so looking reveals no more than sending would.
"""

from typing import Any

from broker_site.errors import NotFound, ProjectBoundary, ValidationFailed
from projects.links import link_active_between, may_start, no_link
from projects.models import Project, ProjectLink
from sessions_app.models import LIVE, AgentSession
from sessions_app.selectors import session_get, sessions_listed, sessions_of

Visibility = Project.LinkVisibility
_SHOWS = {Visibility.NONE: 0, Visibility.NAMES: 1, Visibility.CAPABILITIES: 2}
LINKED_FILTERS = (LIVE, AgentSession.Status.ACTIVE, AgentSession.Status.STALE)


def session_address(own_project_id: str, ref: str, target_project_id: str | None = None) -> tuple[str, str]:
    """(project id, session id or name) of a session as a call names it: `project_id/session`, or `session`
    in `target_project_id` (given) or the caller's own project."""
    project_id, slash, session = ref.partition("/")
    if not slash:
        return target_project_id or own_project_id, ref
    if target_project_id and target_project_id != project_id:
        raise ValidationFailed("The session is named in another project than target_project_id.",
                               field="recipient_id")
    if not session:
        raise ValidationFailed("A session in another project is project_id/session: the session id or name is "
                               "missing.", field="recipient_id")
    return project_id, session


def linked_project(viewer: Project, project_id: str) -> tuple[Project, ProjectLink]:
    """Another project `viewer` may look into: an active link it may start conversations over, the project active."""
    link = link_active_between(viewer, project_id)
    other = (Project.objects.filter(pk=project_id, status=Project.Status.ACTIVE).first()
             if link is not None and may_start(link, viewer.pk) else None)
    if other is None:
        raise no_link(project_id)
    assert link is not None
    return other, link


def sessions_seen(viewer: Project, project_id: str | None, status_filter: str,
                  include_capabilities: bool) -> dict[str, Any]:
    """The answer to list_sessions on every face: `viewer`'s own sessions, or a linked project's (`project_id`)."""
    if project_id and project_id != viewer.pk:
        return linked_sessions_listed(viewer, project_id, status_filter, include_capabilities)
    return sessions_listed(viewer, status_filter, include_capabilities)


def linked_sessions_listed(viewer: Project, project_id: str, status_filter: str, include_capabilities: bool,
                           limit: int = 1000) -> dict[str, Any]:
    """Another project's live sessions, as much of each as that project shows linked projects."""
    if status_filter not in LINKED_FILTERS:
        raise ValidationFailed("Another project's sessions are listed while live only.", field="status_filter",
                               allowed=list(LINKED_FILTERS))
    other, link = linked_project(viewer, project_id)
    shows = _SHOWS[other.link_visibility]
    sessions = [] if not shows else [_shown(s, with_capabilities=include_capabilities and shows >= 2)
                                     for s in sessions_of(other, status_filter)[:limit]]
    return {"sessions": sessions, "count": len(sessions), "status_filter": status_filter,
            "project_id": other.pk, "link_id": str(link.pk), "visibility": other.link_visibility}


def _shown(session: AgentSession, *, with_capabilities: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"session_id": str(session.id), "name": session.name}
    if with_capabilities:
        data["capabilities"] = {"supported_protocols": session.supported_protocols,
                                "supported_features": session.supported_features}
    return data


def session_reached(viewer: Project, ref: str) -> tuple[AgentSession, ProjectLink | None]:
    """A session by its id or name in `viewer`'s project, or by `project_id/session` in a linked project whose
    sessions' capabilities show (with the link); a linked project's session that is not live is not found."""
    project_id, session_ref = session_address(viewer.pk, ref)
    if project_id == viewer.pk:
        return session_get(viewer, session_ref), None
    other, link = linked_project(viewer, project_id)
    if _SHOWS[other.link_visibility] < _SHOWS[Visibility.CAPABILITIES]:
        raise ProjectBoundary("That project does not show its sessions' capabilities to linked projects.",
                              target_project_id=other.pk, reason="visibility", visibility=other.link_visibility)
    session = session_get(other, session_ref)
    if not session.is_live_at():
        raise NotFound("No live session with that id or name in that project.", session=ref[:200])
    return session, link
