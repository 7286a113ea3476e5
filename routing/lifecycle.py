"""Changes that cross apps, one function each: every face calls these, none of them repeats the steps.

Opening a session is sessions_app's business and its mail is routing's, so connecting
(which, on a resume, queues the mail the old connection never acked) lives here, one layer
above both; so does resolving the session a call acts as, since a client's configured identity
comes back through that same resume. So do ending a project (its sessions end with it) and
deleting sessions and projects from the dashboard (the peers are told, the trail records it).
"""

import uuid

from django.db import transaction

from projects.audit import audit_done
from projects.auth import CLI, Principal
from projects.links import links_forget_project
from projects.models import ApiKey, Project
from routing.models import PENDING, Message
from routing.services import messages_requeue_unacked
from sessions_app import services as session_services
from sessions_app.models import AgentSession
from sessions_app.services import Connected, session_disconnect, session_open, sessions_end_all


def session_connect(project: Project, *, actor: str = "", name: str | None = None, capabilities: dict | None = None,
                    session_id: str | None = None, session_token: str | None = None,
                    configured_token: str | None = None) -> Connected:
    """Connect a new session, or resume one by id or name with its token (see sessions_app.services.session_open).

    On a resume, messages handed to the old connection and not acked are queued again at once,
    in the resume's transaction: the agent that resumes gets them now rather than after
    ack_timeout (same ids, so it can drop repeats). `configured_token`: the client's
    X-Session-Token header, the session a connect naming no other one resumes.
    """
    return session_open(project, actor=actor, name=name, capabilities=capabilities, session_id=session_id,
                        session_token=session_token, configured_token=configured_token,
                        on_resume=messages_requeue_unacked)


def session_acting(project: Project, *, token: str | None = None, bound_to: uuid.UUID | None = None,
                   configured_token: str | None = None, heartbeat: bool = False, leaving: bool = False) -> AgentSession:
    """The session a call acts as (sessions_app.services.session_acting), for every face that names it by token.

    The session the client configured (`configured_token`, its X-Session-Token header) that is
    disconnected is resumed first, as session_connect resumes: its unacked mail queued again.
    """
    return session_services.session_acting(project, token=token, bound_to=bound_to, configured_token=configured_token,
                                           on_resume=messages_requeue_unacked, heartbeat=heartbeat, leaving=leaving)


def project_deactivate(project: Project, *, caller: Principal = CLI) -> Project:
    """Stop a project: its sessions are disconnected (and told), new requests refused, its history kept."""
    caller.require_role(ApiKey.Role.OPERATOR, "deactivate projects")
    with transaction.atomic():
        project.status = Project.Status.INACTIVE
        project.save(update_fields=["status", "updated_at"])
        disconnected = sessions_end_all(project, reason="project_deactivated")
    audit_done(caller, "project_deactivate", project.pk, {"sessions_disconnected": disconnected})
    return project


def project_delete(project: Project, *, caller: Principal = CLI) -> int:
    """Delete a project with everything in it (keys, sessions, mail, protocols); its sessions are told first.

    Returns how many messages went with it. The audit trail keeps the record: its events name
    projects by id, not by reference.
    """
    caller.require_role(ApiKey.Role.OPERATOR, "delete projects")
    project_id = project.pk
    with transaction.atomic():
        ended = sessions_end_all(project, reason="project_deleted")
        messages = Message.objects.filter(project=project).count()
        links_forget_project(project_id)
        project.delete()
    audit_done(caller, "project_delete", project_id, {"sessions_ended": ended, "messages_deleted": messages})
    return messages


def session_delete(session: AgentSession, *, caller: Principal = CLI) -> int:
    """Delete a session and its mailbox; if it was connected, it is disconnected (and its peers told) first.

    Returns how many of its messages were still pending: they go with it, which the audit records.
    """
    caller.require_role(ApiKey.Role.OPERATOR, "delete sessions")
    with transaction.atomic():
        session_disconnect(session, reason="deleted")
        pending = Message.objects.filter(recipient=session, state__in=PENDING).count()
        session_id = str(session.pk)
        session.delete()
    audit_done(caller, "session_delete", session.project_id,
               {"session_id": session_id, "name": session.name, "pending_messages_deleted": pending})
    return pending
