"""Writes for protocols: register and delete. Every face calls these."""

import logging
import re
from typing import Any

from django.db import IntegrityError, transaction

from broker_site.errors import Conflict, Forbidden, LimitReached, NotFound, ValidationFailed
from projects.auth import Caller
from projects.models import ApiKey, Project
from protocols.models import CAPABILITIES, PROTOCOL_NAME_PATTERN, Protocol, default_capabilities
from protocols.schemas import schema_check
from protocols.versions import next_versions, parse_version, version_key

log = logging.getLogger("broker.protocols")
_NAME = re.compile(PROTOCOL_NAME_PATTERN)
MAX_NAME = 100
MAX_TAGS = 20
MAX_TAG = 50
MAX_DESCRIPTION = 1000


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or not _NAME.match(name):
        raise ValidationFailed("Protocol names are snake_case: a lowercase letter, then lowercase letters, digits "
                               f"or underscores, not ending in an underscore; at most {MAX_NAME} characters.",
                               field="name", constraint=PROTOCOL_NAME_PATTERN, max_length=MAX_NAME)
    return name


def _check_capabilities(capabilities: Any) -> list[str]:
    if capabilities is None:
        return default_capabilities()
    if (not isinstance(capabilities, list) or not capabilities
            or any(not isinstance(c, str) or c not in CAPABILITIES for c in capabilities)):
        raise ValidationFailed(f"capabilities is a non-empty list drawn from {', '.join(CAPABILITIES)}.",
                               field="capabilities", allowed=list(CAPABILITIES))
    # Keep the canonical order so equal sets read the same everywhere.
    return [c for c in CAPABILITIES if c in capabilities]


def _check_tags(tags: Any) -> list[str]:
    if tags is None:
        return []
    if not isinstance(tags, list) or len(tags) > MAX_TAGS:
        raise ValidationFailed(f"tags is a list of at most {MAX_TAGS} strings.", field="tags", limit=MAX_TAGS)
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip() or len(tag) > MAX_TAG:
            raise ValidationFailed(f"Each tag is a non-blank string of at most {MAX_TAG} characters.", field="tags",
                                   value=str(tag)[:MAX_TAG + 10], max_length=MAX_TAG)
    return list(dict.fromkeys(tags))


def _duplicate(project: Project, name: str, version: str) -> Conflict:
    versions = Protocol.objects.filter(project=project, name=name).values_list("version", flat=True)
    highest = max(versions, key=version_key, default=version)
    return Conflict(f"Protocol {name} {version} is already registered in this project; register a new version.",
                    field="version", name=name, version=version, highest_version=highest,
                    suggested_versions=next_versions(highest))


def protocol_register(project: Project, caller: Caller | None, *, name: str, version: str, schema: Any,
                      capabilities: list[str] | None = None, tags: list[str] | None = None,
                      description: str = "", shared: bool = False) -> Protocol:
    """Register `name` `version` with its JSON Schema in `project`.

    A registered version is immutable: a duplicate is a conflict that suggests the next
    versions, so sessions that negotiated a version never see its schema change under them.
    """
    if caller is not None and project.protocol_registration == Project.Registration.ADMIN:
        caller.require_role(ApiKey.Role.ADMIN, "register protocols in this project")
    name = _check_name(name)
    parsed = parse_version(version)
    capabilities = _check_capabilities(capabilities)
    tags = _check_tags(tags)
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise ValidationFailed(f"description is a string of at most {MAX_DESCRIPTION} characters.",
                               field="description", max_length=MAX_DESCRIPTION)
    if not isinstance(shared, bool):
        raise ValidationFailed("shared must be true or false.", field="shared")
    schema_check(schema)

    if Protocol.objects.filter(project=project, name=name, version=version).exists():
        raise _duplicate(project, name, version)
    # Counting then inserting can let two concurrent registrations pass at the limit; one over
    # the limit is tolerable, a lock on the project row for every registration is not worth it.
    count = Protocol.objects.filter(project=project).count()
    if count >= project.max_protocols:
        raise LimitReached(f"Project {project.pk} already has {count} protocols, its limit.",
                           limit=project.max_protocols, current=count)
    try:
        with transaction.atomic():
            protocol = Protocol.objects.create(
                project=project, name=name, version=version, version_major=parsed.major,
                version_minor=parsed.minor, version_patch=parsed.patch, schema=schema,
                capabilities=capabilities, tags=tags, description=description,
                author=caller.actor if caller is not None else "", shared=shared)
    except IntegrityError:  # the race: a concurrent registration of the same version won
        raise _duplicate(project, name, version) from None
    log.info("protocol_registered", extra={"project": project.pk, "protocol": name, "version": version})
    return protocol


def protocol_delete(project: Project, caller: Caller | None, name: str, version: str) -> None:
    """Delete a protocol version of `project`: its registering key or an admin only.

    Refused while a live session of the project declares that version, since it would
    lose the schema its messages are checked against.
    """
    from sessions_app.selectors import live_sessions

    protocol = Protocol.objects.filter(project=project, name=name, version=version).first()
    if protocol is None:
        raise NotFound(f"No protocol {name} {version} in this project.", name=name, version=version)
    if caller is not None and not caller.has_role(ApiKey.Role.ADMIN) and protocol.author != caller.actor:
        raise Forbidden("Only an admin key or the key that registered a protocol may delete it.",
                        required_role=ApiKey.Role.ADMIN, author=protocol.author)
    # Race: a session may connect declaring this version between this check and the delete.
    # It is harmless: connect does not require the protocol to be registered, and sends of
    # that version are then refused as unknown, which is what deleting it means.
    users = [session for session in live_sessions(project)
             if version in (session.supported_protocols or {}).get(name, [])]
    if users:
        labels = ", ".join(s.label for s in users[:10]) + (f" and {len(users) - 10} more" if len(users) > 10 else "")
        raise Conflict(f"Protocol {name} {version} is declared by live session(s) {labels}; "
                       "it can be deleted once they disconnect or stop declaring it.",
                       name=name, version=version,
                       sessions=[{"session_id": str(s.id), "name": s.name} for s in users])
    protocol.delete()
    log.info("protocol_deleted", extra={"project": project.pk, "protocol": name, "version": version,
                                        "actor": caller.actor if caller is not None else ""})
