"""Who is calling: authentication for every face, and the principals services act for.

REST, MCP and WebSocket all call `authenticate`. It answers 401 with one generic
message whatever was wrong, counts every failure in the audit trail (projects.audit:
auth_failure_record), and never logs the key. A key that authenticated within the last
second is not read again (projects.credentials says how changes reach that cache).

Services take a principal: a `Caller` (an API key, acting in a project) whose role they
check, or `Staff` (the command line, a signed-in admin user), trusted like an operator.
Either way the audit trail names who it was.
"""

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from django.utils import timezone

from broker_site.errors import Forbidden, ProjectBoundary, Unauthorized
from projects.audit import audit_record, auth_failure_record
from projects.credentials import credentials, private_copy
from projects.keys import digest, parse_key
from projects.models import ApiKey, Project

ROLE_RANK = {ApiKey.Role.AGENT: 0, ApiKey.Role.ADMIN: 1, ApiKey.Role.OPERATOR: 2}
# Compared against when the key id is unknown, so both paths do the same work.
_DUMMY_DIGEST = digest("no-such-project_no-such-key_" + "x" * 40)
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Caller:
    """Who is calling (the key) and which project the call acts in."""

    key: ApiKey
    project: Project
    # DRF treats request.user as signed in when this is true.
    is_authenticated: ClassVar[bool] = True

    @property
    def role(self) -> str:
        return self.key.role

    @property
    def actor(self) -> str:
        """The key's public name, safe to log and audit: never the secret."""
        return f"{self.key.project_id}_{self.key.key_id}"

    @property
    def source_project(self) -> str:
        return self.key.project_id

    @property
    def is_operator(self) -> bool:
        return self.key.role == ApiKey.Role.OPERATOR

    def has_role(self, role: str) -> bool:
        return ROLE_RANK[self.key.role] >= ROLE_RANK[role]

    def require_role(self, role: str, action: str) -> None:
        if not self.has_role(role):
            raise Forbidden(f"Only {role} keys may {action}.", required_role=role, your_role=self.key.role)


@dataclass(frozen=True)
class Staff:
    """Someone the broker trusts without a key: the command line ("cli") or an admin user ("admin:NAME")."""

    actor: str
    role: ClassVar[str] = ApiKey.Role.OPERATOR
    is_operator: ClassVar[bool] = True
    source_project: ClassVar[str] = ""

    def has_role(self, role: str) -> bool:
        return True

    def require_role(self, role: str, action: str) -> None:
        return None

    @classmethod
    def admin_user(cls, user) -> "Staff":
        return cls(f"admin:{user.get_username()}")


CLI = Staff("cli")
Principal = Caller | Staff


def credentials_from_headers(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(raw key, requested project id) from `Authorization: Bearer`, `X-API-Key` and `X-Project-ID`.

    `headers` must be case-insensitive (Django's request.headers) or already lower-cased.
    """
    raw = None
    authorization = headers.get("authorization") or ""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        raw = value.strip()
    elif headers.get("x-api-key"):
        raw = headers["x-api-key"].strip()
    project_id = (headers.get("x-project-id") or "").strip() or None
    return raw, project_id


def key_refusal(key: ApiKey, now: datetime) -> str | None:
    """Why a key whose secret matched may not act now: `revoked_key`, `expired_key` (a rotated key's grace
    ended too), or None. The one rule for a new call (authenticate) and an open connection (callers_refused)."""
    if key.is_usable(now):
        return None
    return "revoked_key" if key.revoked_at is not None else "expired_key"


def project_closed_to(project: Project, key: ApiKey) -> bool:
    """An inactive project takes no requests, except from operators (who may reactivate it)."""
    return not project.is_active and key.role != ApiKey.Role.OPERATOR


def authenticate(raw_key: str | None, requested_project_id: str | None = None, *, remote_addr: str = "") -> Caller:
    def refuse(reason: str, key: ApiKey | None = None) -> Unauthorized:
        # Only a key whose secret matched (revoked or expired) names its project in the trail.
        auth_failure_record(reason, remote_addr=remote_addr, actor_key_id=f"{key.project_id}_{key.key_id}" if key else "",
                            target_project=key.project_id if key else "")
        return Unauthorized()

    if not raw_key:
        raise refuse("missing_key")
    parsed = parse_key(raw_key)
    if parsed is None:
        raise refuse("malformed_key")
    cached = credentials.get(parsed.project_id, parsed.key_id)
    key = cached or (ApiKey.objects.select_related("project")
                     .filter(project_id=parsed.project_id, key_id=parsed.key_id).first())
    matches = hmac.compare_digest(key.digest if key else _DUMMY_DIGEST, digest(parsed.raw))
    if key is None or not matches:
        raise refuse("unknown_key")
    if cached is None:
        credentials.put(key)
    now = timezone.now()
    refusal = key_refusal(key, now)
    if refusal is not None:
        raise refuse(refusal, key)

    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now  # the cached row too, so this process writes it once a minute
    key = private_copy(key)
    caller = Caller(key=key, project=key.project)
    if requested_project_id and requested_project_id != key.project_id:
        if not caller.is_operator:
            audit_record("project_boundary", "denied", actor_key_id=caller.actor, source_project=key.project_id,
                         target_project=requested_project_id[:64], remote_addr=remote_addr)
            raise ProjectBoundary("This key belongs to another project than X-Project-ID names.")
        project = Project.objects.filter(pk=requested_project_id).first()
        if project is None:
            raise ProjectBoundary("X-Project-ID names no project.", project_id=requested_project_id[:64])
        audit_record("operator_act_as", "success", actor_key_id=caller.actor, source_project=key.project_id,
                     target_project=project.pk, remote_addr=remote_addr)
        caller = Caller(key=key, project=project)
    if project_closed_to(caller.project, key):
        raise Forbidden(f"Project {caller.project.pk} is {caller.project.status}; it accepts no requests.",
                        project_id=caller.project.pk, status=caller.project.status)
    return caller


def authenticate_kept(raw_key: str | None, requested_project_id: str | None = None) -> Caller | None:
    """The Caller of a key this process keeps (projects.credentials), when `authenticate` would accept it
    without touching the database: its secret matches, it may act now, in its own open project, and its
    last use was written lately. Reads nothing, writes nothing, so an event loop may call it.

    None means "ask `authenticate`": every refusal, every audit and every write is its alone.
    """
    parsed = parse_key(raw_key) if raw_key else None
    key = credentials.get(parsed.project_id, parsed.key_id) if parsed else None
    if key is None or not hmac.compare_digest(key.digest, digest(parsed.raw)):
        return None
    now = timezone.now()
    if (key_refusal(key, now) is not None or (requested_project_id and requested_project_id != key.project_id)
            or project_closed_to(key.project, key)
            or key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION):
        return None
    key = private_copy(key)
    return Caller(key=key, project=key.project)


def callers_refused(callers: Iterable[tuple[int, str]], projects: Mapping[str, Project],
                    now: datetime | None = None) -> dict[tuple[int, str], str]:
    """Of callers authenticated earlier, as (key pk, id of the project acted in), those `authenticate`
    would refuse now, with why: `revoked_key`, `expired_key` (a rotated key's grace ended too) or
    `project_inactive`. For connections that outlive their authentication (WebSockets): one query.

    `projects`: the current rows of the projects acted in (the caller has just read them).
    """
    callers = set(callers)
    now = now or timezone.now()
    keys = {key.pk: key for key in ApiKey.objects.filter(pk__in={pk for pk, _ in callers})}
    refused = {}
    for key_pk, project_id in callers:
        key, project = keys.get(key_pk), projects.get(project_id)
        reason = "revoked_key" if key is None else key_refusal(key, now)  # a deleted key is as good as revoked
        if reason is None and (project is None or project_closed_to(project, key)):
            reason = "project_inactive"
        if reason is not None:
            refused[(key_pk, project_id)] = reason
    return refused
