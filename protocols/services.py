"""Writes for protocols and their adapters: register and delete. Every face calls these."""

import logging
from typing import Any

from django.db import IntegrityError, transaction

from broker_site.errors import Conflict, Forbidden, LimitReached, NotFound, ValidationFailed
from projects.auth import CLI, Principal
from projects.models import ApiKey, Project
from protocols.models import CAPABILITIES, Protocol, ProtocolAdapter, default_capabilities
from protocols.schemas import schema_check
from protocols.selectors import adapter_get, protocol_declared_by
from protocols.transform import operations_check
from protocols.versions import (
    MAX_PROTOCOL_NAME,
    PROTOCOL_NAME_PATTERN,
    is_protocol_name,
    next_versions,
    parse_version,
    version_key,
)

log = logging.getLogger("broker.protocols")
MAX_TAGS = 20
MAX_TAG = 50
MAX_DESCRIPTION = 1000


def _check_name(name: Any) -> str:
    if not is_protocol_name(name):
        raise ValidationFailed("Protocol names are snake_case: a lowercase letter, then lowercase letters, digits "
                               f"or underscores, not ending in an underscore; at most {MAX_PROTOCOL_NAME} characters.",
                               field="name", constraint=PROTOCOL_NAME_PATTERN, max_length=MAX_PROTOCOL_NAME)
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


def protocol_register(project: Project, caller: Principal = CLI, *, name: str, version: str, schema: Any,
                      capabilities: list[str] | None = None, tags: list[str] | None = None,
                      description: str = "", shared: bool = False) -> Protocol:
    """Register `name` `version` with its JSON Schema in `project`.

    A registered version is immutable: a duplicate is a conflict that suggests the next
    versions, so sessions that negotiated a version never see its schema change under them.
    """
    if project.protocol_registration == Project.Registration.ADMIN:
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
                author=caller.actor, shared=shared)
    except IntegrityError:  # the race: a concurrent registration of the same version won
        raise _duplicate(project, name, version) from None
    log.info("protocol_registered", extra={"project": project.pk, "protocol": name, "version": version})
    return protocol


def protocol_delete(project: Project, caller: Principal, name: str, version: str) -> None:
    """Delete a protocol version of `project`: its registering key or an admin only.

    Refused while a live session of the project declares that version, since it would
    lose the schema its messages are checked against.
    """
    protocol = Protocol.objects.filter(project=project, name=name, version=version).first()
    if protocol is None:
        raise NotFound(f"No protocol {name} {version} in this project.", name=name, version=version)
    if not caller.has_role(ApiKey.Role.ADMIN) and protocol.author != caller.actor:
        raise Forbidden("Only an admin key or the key that registered a protocol may delete it.",
                        required_role=ApiKey.Role.ADMIN, author=protocol.author)
    # Race: a session may connect declaring this version between this check and the delete.
    # It is harmless: connect does not require the protocol to be registered, and sends of
    # that version are then refused as unknown, which is what deleting it means.
    users = protocol_declared_by(protocol)
    if users:
        labels = ", ".join(s.label for s in users[:10]) + (f" and {len(users) - 10} more" if len(users) > 10 else "")
        raise Conflict(f"Protocol {name} {version} is declared by live session(s) {labels}; "
                       "it can be deleted once they disconnect or stop declaring it.",
                       name=name, version=version,
                       sessions=[{"session_id": str(s.id), "name": s.name} for s in users])
    protocol.delete()
    log.info("protocol_deleted", extra={"project": project.pk, "protocol": name, "version": version,
                                        "actor": caller.actor})


def _adapter_duplicate(project: Project, name: str, from_version: str, to_version: str) -> Conflict:
    existing = ProtocolAdapter.objects.filter(project=project, protocol_name=name, from_version=from_version,
                                              to_version=to_version).first()
    return Conflict(f"An adapter for {name} {from_version} -> {to_version} already exists in this project; "
                    "delete it first to replace it.", name=name, from_version=from_version, to_version=to_version,
                    adapter_id=str(existing.pk) if existing is not None else None)


def adapter_register(project: Project, caller: Principal = CLI, *, protocol_name: str, from_version: str,
                     to_version: str, operations: Any) -> ProtocolAdapter:
    """Register a declarative adapter turning `protocol_name` `from_version` payloads into `to_version` ones.

    Admin keys only, whatever the project's protocol_registration: an adapter changes what every
    recipient of that version receives. Both versions must be registered in `project`. An adapter
    is immutable like a protocol version; to change one, delete it and register again.
    """
    caller.require_role(ApiKey.Role.ADMIN, "register protocol adapters")
    name = _check_name(protocol_name)
    parse_version(from_version, field="from_version")
    parse_version(to_version, field="to_version")
    if from_version == to_version:
        raise ValidationFailed("from_version and to_version must differ; a version needs no adapter to itself.",
                               field="to_version", from_version=from_version, to_version=to_version)
    cleaned = operations_check(operations)
    registered = set(Protocol.objects.filter(project=project, name=name, version__in=[from_version, to_version])
                     .values_list("version", flat=True))
    missing = [(field, v) for field, v in (("from_version", from_version), ("to_version", to_version))
               if v not in registered]
    if missing:
        names = " and ".join(f"{name} {v}" for _, v in missing)
        raise NotFound(f"No protocol {names} in this project; register it before an adapter that uses it.",
                       name=name, field=missing[0][0], missing_versions=[v for _, v in missing])
    if ProtocolAdapter.objects.filter(project=project, protocol_name=name, from_version=from_version,
                                      to_version=to_version).exists():
        raise _adapter_duplicate(project, name, from_version, to_version)
    try:
        with transaction.atomic():
            adapter = ProtocolAdapter.objects.create(
                project=project, protocol_name=name, from_version=from_version, to_version=to_version,
                operations=cleaned, author=caller.actor)
    except IntegrityError:  # the race: a concurrent registration of the same pair won
        raise _adapter_duplicate(project, name, from_version, to_version) from None
    log.info("protocol_adapter_registered", extra={"project": project.pk, "protocol": name,
                                                   "from_version": from_version, "to_version": to_version})
    return adapter


def adapter_delete(project: Project, caller: Principal, adapter_id: Any,
                   protocol_name: str | None = None) -> ProtocolAdapter:
    """Delete one of `project`'s adapters (admin keys only); with `protocol_name`, it must be that protocol's.

    Returns the deleted adapter (its fields intact, its pk kept) so a face can report what went.
    """
    caller.require_role(ApiKey.Role.ADMIN, "delete protocol adapters")
    adapter = adapter_get(project, adapter_id, protocol_name)
    adapter_pk = adapter.pk
    adapter.delete()
    adapter.pk = adapter_pk
    log.info("protocol_adapter_deleted", extra={"project": project.pk, "protocol": adapter.protocol_name,
                                                "from_version": adapter.from_version, "to_version": adapter.to_version,
                                                "actor": caller.actor})
    return adapter
