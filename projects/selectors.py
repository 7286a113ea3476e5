"""Reads for projects and keys, always scoped by the caller, and their wire shapes."""

from typing import Any

from django.db.models import Count, Q, QuerySet

from broker_site.errors import NotFound, ProjectBoundary
from projects.audit import audit_refused
from projects.auth import CLI, Caller, Principal
from projects.links import OPERATOR_SIDE, link_id_parsed, traffic_flushed
from projects.models import LIVE_LINK_STATES, ApiKey, AuditEvent, Project, ProjectLink
from projects.services import CONFIG_FIELDS, KeyRotation


def project_for(caller: Caller, project_id: str, *, allow_discoverable: bool = False) -> Project:
    """The project `project_id` names, if this caller may see it.

    Its own project and, for operators, any project. Another project's id is refused as a
    project boundary (and audited) whether or not it exists, so ids cannot be probed.
    """
    if project_id == caller.project.pk:
        return caller.project
    project = Project.objects.filter(pk=project_id).first()
    if caller.is_operator and project is not None:
        return project
    if allow_discoverable and project is not None and project.discoverable and project.is_active:
        return project
    audit_refused(caller, "project_boundary", project_id[:64])
    raise ProjectBoundary("That project is outside this key's reach.", project_id=project_id[:64])


def project_for_staff(project_id: str) -> Project:
    """Any project by its id, for the dashboard's signed-in staff, who see every project as operators do."""
    project = Project.objects.filter(pk=project_id[:64]).first()
    if project is None:
        raise NotFound("No such project.", project_id=project_id[:64])
    return project


def projects_by_id(project_ids: set[str]) -> dict[str, Project]:
    """Current settings of projects this process already serves (the server's own read, not a caller's)."""
    return Project.objects.in_bulk(list(project_ids))


def projects_visible(caller: Caller, *, name_filter: str = "", include_inactive: bool = False) -> QuerySet[Project]:
    """Operators see every project; other keys see their own and the discoverable ones."""
    projects = Project.objects.all()
    if not caller.is_operator:
        projects = projects.filter(discoverable=True) | projects.filter(pk=caller.project.pk)
    if not include_inactive:
        projects = projects.filter(status=Project.Status.ACTIVE)
    if name_filter:
        projects = projects.filter(name__icontains=name_filter) | projects.filter(pk__icontains=name_filter)
    return projects.distinct().order_by("pk")


def project_summary(project: Project, *, caller: Principal = CLI, stats: dict[str, Any] | None = None,
                    include_config: bool = False, include_permissions: bool = False) -> dict[str, Any]:
    """The wire shape of a project. Never carries keys or digests.

    `stats` (routing.selectors.project_stats, which counts across the apps) is shown to the project's own keys.
    """
    own = caller.is_operator or caller.project.pk == project.pk
    data: dict[str, Any] = {
        "project_id": project.pk,
        "name": project.name,
        "description": project.description,
        "discoverable": project.discoverable,
    }
    if not own:
        return data  # someone else's discoverable project: its public face only
    data.update(status=project.status, created_at=project.created_at.isoformat())
    if include_config:
        data["config"] = {name: getattr(project, name) for name in CONFIG_FIELDS}
    if stats is not None:
        data["stats"] = stats
    if include_permissions:
        data["permissions"] = {
            "role": caller.role,
            "can_manage_keys": caller.has_role(ApiKey.Role.ADMIN),
            "can_register_protocols": (project.protocol_registration == Project.Registration.ANY
                                       or caller.has_role(ApiKey.Role.ADMIN)),
            "can_create_projects": caller.is_operator,
        }
    return data


def api_keys_of(project: Project, caller: Principal) -> QuerySet[ApiKey]:
    """A project's keys (never their secrets); only admins may list them."""
    caller.require_role(ApiKey.Role.ADMIN, "list keys")
    return ApiKey.objects.filter(project=project).order_by("created_at")


def api_key_get(project: Project, key_id: str) -> ApiKey:
    key = ApiKey.objects.filter(project=project, key_id=key_id).first()
    if key is None:
        raise NotFound("No key with that id in this project.", key_id=key_id[:32])
    return key


def api_key_summary(key: ApiKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "project_id": key.project_id,
        "role": key.role,
        "label": key.label,
        "created_at": key.created_at.isoformat(),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "usable": key.is_usable(),
    }


def audit_events_of(project: Project, caller: Principal, limit: int = 100) -> QuerySet[AuditEvent]:
    caller.require_role(ApiKey.Role.ADMIN, "read the audit trail")
    return (AuditEvent.objects.filter(source_project=project.pk) | AuditEvent.objects.filter(target_project=project.pk)
            ).order_by("-created_at", "-id")[:limit]


def project_created(project: Project, key: ApiKey, raw: str, caller: Principal) -> dict[str, Any]:
    """The answer to a new project: its settings, and its first admin key, shown this once."""
    return {**project_summary(project, caller=caller, include_config=True), "admin_key": api_key_created(key, raw)}


SHOWN_ONCE = "This is the only time the key is shown. Store it now."


def api_key_created(key: ApiKey, raw: str) -> dict[str, Any]:
    """The answer to a new key (created, a project's first): the only time its secret is shown."""
    return {**api_key_summary(key), "api_key": raw, "notice": SHOWN_ONCE}


def api_key_rotated(rotation: KeyRotation) -> dict[str, Any]:
    """One rotation: the new key (shown this once), and the key it replaces with the end of its grace period."""
    return {**api_key_summary(rotation.new), "api_key": rotation.raw, "replaces": rotation.old.key_id,
            "old_key_expires_at": rotation.old.expires_at.isoformat()}


def api_keys_rotated(project: Project, rotations: list[KeyRotation]) -> dict[str, Any]:
    """The answer to rotating a project's keys: always a list, however many were rotated (often one)."""
    data: dict[str, Any] = {"keys": [api_key_rotated(r) for r in rotations], "count": len(rotations),
                            "notice": SHOWN_ONCE}
    if not rotations:
        data["message"] = f"Project {project.pk} has no active keys to rotate."
    return data


def audit_listed(project: Project, caller: Principal, limit: int = 100) -> list[dict[str, Any]]:
    """A project's audit trail as its admins see it.

    A project's answers never name another tenant: an event with another project on its other
    side (that project's key knocked on this one's door, or this one's key on another's) is shown
    without the other side's project, key or the details it carried. Operators are the broker's
    staff, not a tenant: their keys, and their own project when they act as themselves, stay named;
    the tenant an operator acted in (X-Project-ID) is still another project.
    """
    events = list(audit_events_of(project, caller, limit))
    # The two sides of a link know each other: its events show both (the requester named the target itself).
    linked = {str(pk) for pk in links_of(project).values_list("pk", flat=True)}
    events_shown = [e for e in events if (e.details or {}).get("link_id") in linked]
    actors = {e.actor_key_id for e in events if _foreign(e.source_project, project)}
    operators = {f"{project_id}_{key_id}" for project_id, key_id in ApiKey.objects.filter(
        role=ApiKey.Role.OPERATOR, project_id__in={a.split("_", 1)[0] for a in actors},
        key_id__in={a.split("_", 1)[-1] for a in actors}).values_list("project_id", "key_id")}
    return [audit_event_summary(e) if e in events_shown else
            audit_event_summary(e, hide_source=_foreign_source(e, project, operators),
                                name_actor=e.actor_key_id in operators,
                                hide_target=_foreign(e.target_project, project)) for e in events]


def _foreign(project_id: str, viewer: Project) -> bool:
    return bool(project_id) and project_id != viewer.pk


def _foreign_source(event: AuditEvent, viewer: Project, operators: set[str]) -> bool:
    """Another tenant on the event's source side; an operator acting from its own project is not one."""
    as_themselves = event.actor_key_id in operators and event.actor_key_id.startswith(f"{event.source_project}_")
    return _foreign(event.source_project, viewer) and not as_themselves


def audit_event_summary(event: AuditEvent, *, hide_source: bool = False, name_actor: bool = False,
                        hide_target: bool = False) -> dict[str, Any]:
    summary = {
        "time": event.created_at.isoformat(), "action": event.action, "outcome": event.outcome,
        "actor_key_id": event.actor_key_id, "source_project": event.source_project,
        "target_project": event.target_project, "details": event.details, "count": event.count,
    }
    if hide_source:
        summary.update(actor_key_id=event.actor_key_id if name_actor else None, source_project=None,
                       actor="another project", details={})
    if hide_target:
        summary.update(target_project=None, target="another project", details={})
    return summary


# Links

def links_of(project: Project) -> QuerySet[ProjectLink]:
    """The links `project` is a side of, asking or asked, newest first."""
    return ProjectLink.objects.filter(Q(source=project) | Q(target_project_id=project.pk)).order_by("-requested_at")


def links_listed(project: Project, caller: Principal, *, state: str | None = None,
                 everyone: bool = False) -> dict[str, Any]:
    """A project's links as its admins see them; every link for an operator who asks for `everyone`."""
    caller.require_role(ApiKey.Role.OPERATOR if everyone else ApiKey.Role.ADMIN, "list project links")
    traffic_flushed()
    links = ProjectLink.objects.order_by("-requested_at") if everyone else links_of(project)
    if state:
        links = links.filter(state=state)
    shown = [link_summary(link, project) for link in links[:LINKS_LISTED]]
    return {"links": shown, "count": len(shown)}


LINKS_LISTED = 500


def link_get(project: Project, caller: Principal, link_id: str) -> ProjectLink:
    """One link `project` is a side of, as its admins see it (an operator: any link)."""
    caller.require_role(ApiKey.Role.ADMIN, "read project links")
    traffic_flushed()
    seen = ProjectLink.objects.all() if caller.is_operator else links_of(project)
    link = seen.filter(pk=link_id_parsed(link_id)).first()
    if link is None:
        raise NotFound("No link with that id that this project is a side of.", link_id=link_id)
    return link


LINKS_IN_STATS = 50


def links_traffic(project: Project) -> dict[str, Any]:
    """A project's links in its stats: how many in each state, and the live ones (newest first, at most
    LINKS_IN_STATS) with their traffic, so project info shows what crosses each link."""
    traffic_flushed()
    by_state = dict(links_of(project).order_by().values_list("state").annotate(n=Count("pk")))
    live = links_of(project).filter(state__in=LIVE_LINK_STATES)[:LINKS_IN_STATS]
    return {"by_state": by_state,
            "live": [{"link_id": str(link.pk), "other_project_id": link.other_side(project.pk), "state": link.state,
                      "sent": link.sent, "delivered": link.delivered, "refused": link.refusals} for link in live]}


def link_summary(link: ProjectLink, viewer: Project | None = None) -> dict[str, Any]:
    """The wire shape of a link, with `side` (asking or asked) for the project looking at it."""
    data: dict[str, Any] = {
        "link_id": str(link.pk), "source_project_id": link.source_id, "target_project_id": link.target_project_id,
        "state": link.state, "direction": link.direction, "allowed_protocols": link.allowed_protocols,
        "rate_limit_per_minute": link.rate_limit_per_minute, "max_message_bytes": link.max_message_bytes,
        "requested_terms": link.requested, "requested_at": link.requested_at.isoformat(),
        "expires_at": link.expires_at.isoformat() if link.state == ProjectLink.State.PENDING else None,
        "answered_at": link.answered_at.isoformat() if link.answered_at else None,
        "ended_at": link.ended_at.isoformat() if link.ended_at else None,
        "traffic": {"sent": link.sent, "delivered": link.delivered, "refused": link.refusals},
    }
    if viewer is not None and viewer.pk in (link.source_id, link.target_project_id):
        data["side"] = "source" if viewer.pk == link.source_id else "target"
        data["other_project_id"] = link.other_side(viewer.pk)
    if link.state == ProjectLink.State.SUSPENDED:
        data["suspended_by"] = ("operator" if link.suspended_by == OPERATOR_SIDE else
                                link.suspended_by if viewer is None else
                                "this project" if link.suspended_by == viewer.pk else "the other project")
    return data


def links_live_for_operators(caller: Principal) -> list[ProjectLink]:
    """Every pending, active or suspended link, with this process's latest traffic counts (operators only)."""
    caller.require_role(ApiKey.Role.OPERATOR, "read every project's links")
    traffic_flushed()
    return list(ProjectLink.objects.filter(state__in=LIVE_LINK_STATES).order_by("source_id", "target_project_id"))
