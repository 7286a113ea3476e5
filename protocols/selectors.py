"""Reads for protocols, always scoped by the viewing project, and their wire shape."""

import copy
import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import Case, QuerySet, When

from broker_site.errors import NotFound, ValidationFailed
from projects.links import protocol_allowed
from projects.models import Project, ProjectLink
from projects.selectors import links_of
from protocols.contracts import DiscoverIn
from protocols.models import Protocol, ProtocolAdapter
from protocols.negotiation import MATRIX_MAX, MATRIX_MIN, negotiate
from protocols.versions import VersionRange, parse_range, version_key
from sessions_app.linked import session_reached
from sessions_app.models import AgentSession
from sessions_app.selectors import live_sessions, session_get

MAX_TAG_FILTERS = 20
MAX_PAGE = 50
MAX_SCANNED = 20_000  # catalogue rows one discovery reads at most (without their schemas)


@dataclass(frozen=True)
class Discovered:
    protocols: list[Protocol]
    more: bool  # another page follows
    complete: bool  # False: the scan stopped at MAX_SCANNED rows


def _visible(project: Project, include_shared: bool, linked: dict[str, ProjectLink] | None = None) -> QuerySet[Protocol]:
    own = Protocol.objects.filter(project=project)
    if not include_shared and not linked:
        return own
    # Other projects' protocols are visible only while their project is active: a deactivated
    # project's catalogue is withdrawn with it.
    others = Protocol.objects.filter(project__status=Project.Status.ACTIVE).exclude(project=project)
    shared = others.filter(shared=True) if include_shared else others.none()
    return own | shared | (others.filter(project_id__in=list(linked)) if linked else others.none())


def links_serving(project: Project) -> dict[str, ProjectLink]:
    """`project`'s active links, by the other project's id."""
    return {link.other_side(project.pk): link for link in links_of(project).filter(state=ProjectLink.State.ACTIVE)}


def protocols_discover(project: Project, *, name: str | None = None, version_range: str | VersionRange | None = None,
                       tags: list[str] | None = None, include_shared: bool = False, include_linked: bool = False,
                       offset: int = 0, limit: int = MAX_PAGE) -> Discovered:
    """`project`'s protocols (with include_shared, other projects' shared ones; with include_linked, the
    protocols of projects it has an active link with that the link allows), filtered, a page at a time.

    Ordered by name, then version numerically, then own project before others, in SQL, so a page
    reads only the rows up to it, without their schemas (loaded for the page alone). Other
    tenants' catalogues are theirs to grow: a discovery reads at most MAX_SCANNED rows, and one
    whose filters leave it reading past that says it is incomplete rather than read them all.
    """
    linked = links_serving(project) if include_linked else {}
    matches = _visible(project, include_shared, linked)
    if name:
        matches = matches.filter(name=name)
    in_range = parse_range(version_range) if isinstance(version_range, str) else version_range
    if tags is not None and (not isinstance(tags, list) or len(tags) > MAX_TAG_FILTERS
                             or any(not isinstance(t, str) for t in tags)):
        raise ValidationFailed(f"tags is a list of at most {MAX_TAG_FILTERS} strings.", field="tags")
    wanted = {t for t in (tags or []) if t}
    ordered = (matches.defer("schema").annotate(others=Case(When(project=project, then=0), default=1))
               .order_by("name", "version_major", "version_minor", "version_patch", "others", "project_id"))
    page: list[uuid.UUID] = []
    skipped = scanned = 0
    complete = True
    for protocol in ordered[:MAX_SCANNED + 1].iterator(chunk_size=500):
        scanned += 1
        if scanned > MAX_SCANNED:
            complete = False
            break
        if in_range is not None and not in_range(protocol.version):
            continue
        # Filtered here rather than in SQL: SQLite has no JSON `contains` lookup.
        if wanted and not wanted.issubset(protocol.tags or []):
            continue
        if not _seen_by(project, protocol, include_shared, linked):
            continue
        if skipped < offset:
            skipped += 1
            continue
        page.append(protocol.pk)
        if len(page) > limit:
            break
    more = len(page) > limit
    by_id = Protocol.objects.select_related("project").in_bulk(page[:limit])
    return Discovered([by_id[pk] for pk in page[:limit]], more, complete)


def _seen_by(project: Project, protocol: Protocol, include_shared: bool, linked: dict[str, ProjectLink]) -> bool:
    if protocol.project_id == project.pk or (include_shared and protocol.shared):
        return True
    link = linked.get(protocol.project_id)
    return link is not None and protocol_allowed(link, protocol.name, protocol.version)


def protocols_found(project: Project, query: DiscoverIn) -> dict[str, Any]:
    """The answer to a discovery: the matching protocols with their schemas, and a word when there are none.

    A linked project's protocol names the link it is seen over (`link_id`): to send it across, this
    project registers the same version itself, as with a shared one.
    """
    found = protocols_discover(project, name=query.name, version_range=query.version_range, tags=query.tags,
                               include_shared=query.include_shared, include_linked=query.include_linked,
                               offset=query.offset, limit=query.limit)
    linked = links_serving(project) if query.include_linked else {}
    shown = []
    for protocol in found.protocols:
        summary = protocol_summary(protocol, project)
        if protocol.project_id in linked:
            summary["link_id"] = str(linked[protocol.project_id].pk)
        shown.append(summary)
    body: dict[str, Any] = {"protocols": shown, "count": len(shown),
                            "next_offset": query.offset + len(shown) if found.more else None}
    if not found.complete:
        body["incomplete"] = True
        body["message"] = (f"Stopped after reading {MAX_SCANNED} catalogue entries: name the protocol, or narrow "
                           "include_shared, to see the rest.")
    elif not shown:
        body["message"] = "No protocols match these filters."
    return body


def negotiated(source: AgentSession, target_ref: str, required_protocols: list | None) -> dict[str, Any]:
    """Negotiation with a session of the source's project, or with `project_id/session` over an active link
    (sessions_app.linked): across, only what the link's terms allow counts, and the rest is said."""
    target, link = session_reached(source.project, target_ref)
    if link is None:
        return negotiate(source, target, required_protocols)
    result = negotiate(_over(source, link), _over(target, link), required_protocols)
    result.update(link_id=str(link.pk), target_project_id=target.project_id,
                  not_allowed_by_link=_refused_by_link(link, source, target))
    if link.allowed_protocols is not None and not result["supported_protocols"] and result["compatible"]:
        result["compatible"] = False
        result.pop("free_form_only", None)
        result["reasons"].insert(0, "The link carries only the protocols it allows, and the sessions share none.")
    return result


def _over(session: AgentSession, link: ProjectLink) -> AgentSession:
    """The session as the link sees it: the protocol versions the link allows, and no others."""
    seen = copy.copy(session)
    seen.supported_protocols = {
        name: kept for name, versions in (session.supported_protocols or {}).items()
        if (kept := [v for v in versions if protocol_allowed(link, name, v)])}
    return seen


def _refused_by_link(link: ProjectLink, *sessions: AgentSession) -> dict[str, list[str]]:
    refused: dict[str, set[str]] = {}
    for session in sessions:
        for name, versions in (session.supported_protocols or {}).items():
            refused.setdefault(name, set()).update(v for v in versions if not protocol_allowed(link, name, v))
    return {name: sorted(versions, key=version_key) for name, versions in sorted(refused.items()) if versions}


def protocol_get(project: Project, name: str, version: str, include_shared: bool = False) -> Protocol:
    """`name` `version` of `project`, or (with include_shared) another active project's shared one."""
    own = Protocol.objects.filter(project=project, name=name, version=version).select_related("project").first()
    if own is not None:
        return own
    if include_shared:
        shared = (_visible(project, True).filter(name=name, version=version).exclude(project=project)
                  .select_related("project").order_by("project_id").first())
        if shared is not None:
            return shared
    raise protocol_not_found(name, version)


def protocol_not_found(name: str, version: str) -> NotFound:
    return NotFound(f"No protocol {name} {version} in this project.", name=name, version=version)


def protocol_for_message(project: Project, declared: dict[str, list[str]], name: str | None,
                         version: str | None) -> Protocol | None:
    """The registered protocol a message claims; without a version, the highest one the sender `declared`
    that is registered (else the highest registered). None for a free-form message."""
    if not name:
        if version:
            raise ValidationFailed("protocol_version needs protocol_name.", field="protocol_name")
        return None
    # One read; a schema is read only when its validator is not compiled yet (protocols.schemas).
    rows = Protocol.objects.filter(project=project, name=name).defer("schema").select_related("project")
    registered = {p.version: p for p in (rows.filter(version=version) if version else rows)}
    if version:
        if version not in registered:
            raise protocol_not_found(name, version)
        return registered[version]
    candidates = ([v for v in declared.get(name, []) if v in registered] or list(registered))
    if not candidates:
        raise NotFound(f"No protocol {name} is registered in this project.", protocol_name=name)
    return registered[max(candidates, key=version_key)]


def protocol_declared_by(protocol: Protocol) -> list[AgentSession]:
    """The live sessions of the protocol's project that declare its version (it may not be deleted meanwhile)."""
    return [session for session in live_sessions(protocol.project)
            if protocol.version in (session.supported_protocols or {}).get(protocol.name, [])]


def protocol_summary(protocol: Protocol, viewer_project: Project, *, include_schema: bool = True) -> dict[str, Any]:
    read_only = protocol.project_id != viewer_project.pk
    data: dict[str, Any] = {
        "name": protocol.name,
        "version": protocol.version,
        "capabilities": protocol.capabilities,
        "tags": protocol.tags,
        "description": protocol.description,
        "author": protocol.author,
        "shared": protocol.shared,
        "registered_at": protocol.registered_at.isoformat(),
        "project_id": protocol.project_id,
        "read_only": read_only,
    }
    if include_schema:
        data["schema"] = protocol.schema
    if read_only:
        data["source_project"] = protocol.project_id
    return data


def protocols_named(project: Project, name: str, versions: list[str]) -> list[Protocol]:
    """`project`'s own registrations of `name` among `versions`, in one query."""
    return list(Protocol.objects.filter(project=project, name=name, version__in=versions))


def adapters_of(project: Project, protocol_name: str | None = None) -> list[ProtocolAdapter]:
    """`project`'s adapters, optionally of one protocol, by name then versions numerically."""
    found = ProtocolAdapter.objects.filter(project=project)
    if protocol_name is not None:
        found = found.filter(protocol_name=protocol_name)
    return sorted(found, key=lambda a: (a.protocol_name, version_key(a.from_version), version_key(a.to_version)))


def adapters_from(project: Project, protocol_name: str, from_version: str,
                  to_versions: list[str]) -> dict[str, ProtocolAdapter]:
    """`project`'s adapters of `protocol_name` from `from_version` to any of `to_versions`, by target version."""
    found = ProtocolAdapter.objects.filter(project=project, protocol_name=protocol_name, from_version=from_version,
                                           to_version__in=to_versions)
    return {adapter.to_version: adapter for adapter in found}


def adapter_get(project: Project, adapter_id: Any, protocol_name: str | None = None) -> ProtocolAdapter:
    """One of `project`'s adapters (of `protocol_name`, when given), or NotFound."""
    try:
        pk = adapter_id if isinstance(adapter_id, uuid.UUID) else uuid.UUID(str(adapter_id))
    except ValueError:
        pk = None
    found = ProtocolAdapter.objects.filter(project=project, pk=pk).first() if pk is not None else None
    if found is None or (protocol_name is not None and found.protocol_name != protocol_name):
        raise NotFound("No such protocol adapter in this project.", adapter_id=str(adapter_id)[:64])
    return found


def adapter_summary(adapter: ProtocolAdapter) -> dict[str, Any]:
    return {
        "id": str(adapter.pk),
        "protocol_name": adapter.protocol_name,
        "from_version": adapter.from_version,
        "to_version": adapter.to_version,
        "operations": adapter.operations,
        "author": adapter.author,
        "created_at": adapter.created_at.isoformat(),
        "project_id": adapter.project_id,
    }


def matrix_sessions(project: Project, refs: list[str] | None = None) -> list[AgentSession]:
    """The sessions a compatibility matrix covers: those named, else the project's live ones (at most 50)."""
    if refs is not None:
        return [session_get(project, ref) for ref in refs]
    sessions = list(live_sessions(project)[:MATRIX_MAX])
    if len(sessions) < MATRIX_MIN:
        raise ValidationFailed("The project has fewer than two live sessions to compare.",
                               field="session_ids", live_sessions=len(sessions))
    return sessions
