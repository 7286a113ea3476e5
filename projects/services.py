"""Writes for projects and keys. Every face calls these; none holds the rules itself.

Deactivating and deleting a project also end its sessions, which is another app's business:
those two live one layer up, in routing.lifecycle.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from broker_site.errors import Conflict, Forbidden, LimitReached, NotFound, ValidationFailed
from projects.audit import audit_done
from projects.auth import CLI, ROLE_RANK, Caller, Principal
from projects.keys import compose_key, digest, new_key_id
from projects.models import ApiKey, Project
from projects.quotas import quota_defaults, quotas_checked

log = logging.getLogger("broker.projects")

# Fields a project admin may change through project_update; the rest is identity or operator-only.
CONFIG_FIELDS = (
    "max_sessions", "max_protocols", "max_queue_size", "stale_after", "disconnect_after",
    "ack_timeout", "max_attempts", "rate_limit_per_minute", "max_payload_bytes", "protocol_registration",
    "link_visibility",
)
UPDATABLE_FIELDS = ("name", "description", "discoverable", *CONFIG_FIELDS)


def _clean(project: Project) -> None:
    """Field rules from the model (id pattern, lengths, config bounds) as one validation_error."""
    try:
        project.full_clean(validate_unique=False)
    except DjangoValidationError as exc:
        # The model calls the id `id`; every face calls it project_id.
        fields = {"project_id" if name == "id" else name: [str(m) for m in messages]
                  for name, messages in exc.message_dict.items()}
        raise ValidationFailed("The project settings are not valid.", fields=fields) from None
    if project.disconnect_after <= project.stale_after:
        raise ValidationFailed("disconnect_after must be longer than stale_after.",
                               fields={"disconnect_after": [f"must be greater than stale_after ({project.stale_after})"]})


def _new_key(project: Project, role: str, label: str, expires_at: datetime | None) -> tuple[ApiKey, str]:
    for _ in range(5):
        key_id = new_key_id()
        if not ApiKey.objects.filter(project=project, key_id=key_id).exists():
            break
    raw = compose_key(project.pk, key_id)
    key = ApiKey.objects.create(project=project, key_id=key_id, role=role, label=label[:100],
                                digest=digest(raw), expires_at=expires_at)
    return key, raw


def project_create(*, project_id: str, name: str, description: str = "", discoverable: bool = False,
                   config: dict[str, Any] | None = None, caller: Principal = CLI) -> tuple[Project, ApiKey, str]:
    """Create a project and its first admin key. The raw key is returned here and never again."""
    caller.require_role(ApiKey.Role.OPERATOR, "create projects")
    config = config or {}
    unknown = sorted(set(config) - set(CONFIG_FIELDS))
    if unknown:
        raise ValidationFailed("Unknown project settings.", fields={name: ["unknown setting"] for name in unknown})
    project = Project(id=project_id, name=name, description=description, discoverable=discoverable,
                      **quota_defaults())
    project.quota_grants = quotas_checked(project, config, caller)
    for setting, value in config.items():
        setattr(project, setting, value)
    _clean(project)
    if Project.objects.filter(pk=project_id).exists() or Project.objects.filter(name=name).exists():
        raise _duplicate_project(project_id, name)
    try:
        with transaction.atomic():
            project.save(force_insert=True)
            key, raw = _new_key(project, ApiKey.Role.ADMIN, "first admin key", None)
    except IntegrityError:
        raise _duplicate_project(project_id, name) from None
    audit_done(caller, "project_create", project.pk)
    return project, key, raw


def _duplicate_project(project_id: str, name: str) -> Conflict:
    taken_id = Project.objects.filter(pk=project_id).exists()
    field = "project_id" if taken_id else "name"
    value = project_id if taken_id else name
    suggestions = [f"{value}-2", f"{value}-team"] if taken_id else [f"{value} 2", f"{value} (team)"]
    return Conflict(f"A project with that {field} already exists.", field=field, suggestions=suggestions)


def project_update(project: Project, changes: dict[str, Any], *, caller: Principal = CLI) -> Project:
    """Change a project's description or settings; its quotas only within what projects.quotas allows the caller."""
    caller.require_role(ApiKey.Role.ADMIN, "change project settings")
    unknown = sorted(set(changes) - set(UPDATABLE_FIELDS))
    if unknown:
        raise ValidationFailed("These fields cannot be changed.", fields={name: ["not changeable"] for name in unknown})
    grants = quotas_checked(project, changes, caller)
    if grants:
        project.quota_grants = {**(project.quota_grants or {}), **grants}
    for name, value in changes.items():
        setattr(project, name, value)
    _clean(project)
    if "name" in changes and Project.objects.filter(name=project.name).exclude(pk=project.pk).exists():
        raise Conflict("A project with that name already exists.", field="name")
    project.save()
    audit_done(caller, "project_update", project.pk, {"fields": sorted(changes)})
    return project


def project_activate(project: Project, *, caller: Principal = CLI) -> Project:
    caller.require_role(ApiKey.Role.OPERATOR, "activate projects")
    project.status = Project.Status.ACTIVE
    project.save(update_fields=["status", "updated_at"])
    audit_done(caller, "project_activate", project.pk)
    return project


def _require_power_over(caller: Principal, role: str, action: str) -> None:
    """Admins manage keys; no key manages a key with more power than its own."""
    caller.require_role(ApiKey.Role.ADMIN, f"{action} keys")
    if ROLE_RANK[role] > ROLE_RANK[caller.role]:
        raise Forbidden(f"A key cannot {action} a key with more power than its own.", requested_role=role)


def api_key_create(project: Project, *, role: str = ApiKey.Role.AGENT, label: str = "",
                   expires_at: datetime | None = None, caller: Principal = CLI) -> tuple[ApiKey, str]:
    """Issue a key. Admins issue agent and admin keys; only operators issue operator keys."""
    if role not in ROLE_RANK:
        raise ValidationFailed("Unknown role.", fields={"role": [f"one of {', '.join(ROLE_RANK)}"]})
    _require_power_over(caller, role, "create")
    _check_expiry(expires_at)
    key, raw = _new_key(project, role, label, expires_at)
    audit_done(caller, "api_key_create", project.pk, {"key_id": key.key_id, "role": role})
    return key, raw


def _check_expiry(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed("expires_at must be in the future.", fields={"expires_at": ["must be in the future"]})


def api_key_update(key: ApiKey, changes: dict[str, Any], *, caller: Principal = CLI) -> ApiKey:
    """Change a key's label or expiry. Its project, role and secret never change: rotate or revoke it instead."""
    _require_power_over(caller, key.role, "change")
    unknown = sorted(set(changes) - {"label", "expires_at"})
    if unknown:
        raise ValidationFailed("These fields cannot be changed.", fields={name: ["not changeable"] for name in unknown})
    if "expires_at" in changes:
        _check_expiry(changes["expires_at"])
    changed = sorted(name for name, value in changes.items() if getattr(key, name) != value)
    for name in changed:
        setattr(key, name, changes[name])
    if changed:
        key.label = key.label[:100]
        key.save(update_fields=changed)
        audit_done(caller, "api_key_update", key.project_id, {"key_id": key.key_id, "fields": changed})
    return key


def _grace_seconds(grace_period_seconds: int | None) -> int:
    grace = settings.BROKER["KEY_ROTATION_GRACE_SECONDS"] if grace_period_seconds is None else grace_period_seconds
    if not 0 <= grace <= 7 * 86_400:
        raise ValidationFailed("grace_period_seconds must be between 0 and 604800.",
                               fields={"grace_period_seconds": ["between 0 and 604800"]})
    return grace


def api_key_rotate(key: ApiKey, *, grace_period_seconds: int | None = None,
                   caller: Principal = CLI) -> tuple[ApiKey, str]:
    """Issue a replacement with the same role; the old key keeps working for the grace period."""
    _require_power_over(caller, key.role, "rotate")
    if key.revoked_at is not None:
        raise Conflict("That key is revoked; create a new key instead.", key_id=key.key_id)
    grace = _grace_seconds(grace_period_seconds)
    with transaction.atomic():
        new_key, raw = _new_key(key.project, key.role, key.label, key.expires_at)
        old_ends = timezone.now() + timedelta(seconds=grace)
        key.expires_at = min(key.expires_at, old_ends) if key.expires_at else old_ends
        key.replaced_by = new_key
        key.save(update_fields=["expires_at", "replaced_by"])
    audit_done(caller, "api_key_rotate", key.project_id,
               {"key_id": key.key_id, "new_key_id": new_key.key_id, "grace_period_seconds": grace})
    return new_key, raw


@dataclass(frozen=True)
class KeyRotation:
    old: ApiKey  # its expires_at is now the end of its grace period
    new: ApiKey
    raw: str  # the new key, shown this once


# Every active key of a project rotated in one call and one answer; past this, name the keys one by one.
MAX_KEYS_ROTATED = 100


def project_keys_rotate(project: Project, *, key: ApiKey | None = None, grace_period_seconds: int | None = None,
                        caller: Principal = CLI) -> list[KeyRotation]:
    """Rotate `key`, or without one, what "this project's keys" means to the caller: its own key when
    that key belongs to `project` (an admin rotating itself), otherwise every active key of `project`
    (an operator or staff acting for another project). Active: usable and not already replaced, so a
    key in its grace period does not get a second successor. All or none, each rotation audited.
    """
    if key is not None:
        return [KeyRotation(key, *api_key_rotate(key, grace_period_seconds=grace_period_seconds, caller=caller))]
    if isinstance(caller, Caller) and caller.key.project_id == project.pk:
        # Read again rather than rotate the caller's own object: it was loaded when the call was authenticated.
        own = ApiKey.objects.filter(project=project, pk=caller.key.pk).first()
        if own is None:
            raise NotFound("The calling key is no longer in this project.", key_id=caller.key.key_id)
        return project_keys_rotate(project, key=own, grace_period_seconds=grace_period_seconds, caller=caller)
    caller.require_role(ApiKey.Role.OPERATOR, "rotate every key of a project")
    _grace_seconds(grace_period_seconds)
    with transaction.atomic():
        # Race: two rotations of the same project at once. The row locks make the second wait, and then
        # see the first's keys as replaced, so no key gets two successors (SQLite serialises writers anyway).
        now = timezone.now()
        active = [k for k in ApiKey.objects.select_for_update()
                  .filter(project=project, revoked_at__isnull=True, replaced_by__isnull=True)
                  .order_by("created_at", "pk") if k.is_usable(now)]
        if len(active) > MAX_KEYS_ROTATED:
            raise LimitReached(f"Project {project.pk} has more than {MAX_KEYS_ROTATED} active keys to rotate at "
                               "once; rotate them by key_id.", active_keys=len(active), limit=MAX_KEYS_ROTATED)
        for old in active:
            old.project = project  # one project row for all, not a read per key
        return [KeyRotation(old, *api_key_rotate(old, grace_period_seconds=grace_period_seconds, caller=caller))
                for old in active]


def api_key_revoke(key: ApiKey, *, caller: Principal = CLI) -> ApiKey:
    _require_power_over(caller, key.role, "revoke")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_done(caller, "api_key_revoke", key.project_id, {"key_id": key.key_id})
    return key
