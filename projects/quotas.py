"""Who may set a project's quotas, and how high: the one rule every face that changes a project goes through.

A quota is a setting that spends the broker's resources for everyone: sessions, protocols,
queue size, request rate, payload size. Each has a broker-wide ceiling the operators of the
process set in the environment (BROKER_CEILING_*). Operators (operator keys, the command
line, the dashboard's users) may set a quota anywhere up to its ceiling, and what they set is
recorded as the project's grant. A project's own admins may move a quota freely below its
grant (the model's default where an operator never set one), and never above it or the
ceiling: lowering one is theirs to undo, raising one is an operator's call.
"""

from typing import Any

from django.conf import settings

from broker_site.errors import Forbidden, ValidationFailed
from projects.auth import Principal
from projects.models import Project

QUOTA_FIELDS = ("max_sessions", "max_protocols", "max_queue_size", "rate_limit_per_minute", "max_payload_bytes")


def quota_ceiling(name: str) -> int:
    return settings.BROKER["QUOTA_CEILINGS"][name]


def quota_allowance(project: Project, name: str) -> int:
    """The most a project admin may set `name` to: the operator's grant (else the default), within the ceiling."""
    granted = (project.quota_grants or {}).get(name, Project._meta.get_field(name).get_default())
    return min(int(granted), quota_ceiling(name))


def quota_defaults() -> dict[str, int]:
    """A new project's quotas where nobody chose one: the model's defaults, never above a ceiling."""
    return {name: min(Project._meta.get_field(name).get_default(), quota_ceiling(name)) for name in QUOTA_FIELDS}


def quotas_checked(project: Project, changes: dict[str, Any], caller: Principal) -> dict[str, int]:
    """Refuse quota changes over the ceiling (operators) or over the project's grant (everyone else).

    Returns the grants to record: the quotas an operator set in `changes`. A value a quota
    already has is never refused (a project set up before a ceiling came down keeps it until an
    operator lowers it). Values that are not whole numbers are left to the model's own checks.
    """
    asked = {name: value for name, value in changes.items()
             if name in QUOTA_FIELDS and isinstance(value, int) and not isinstance(value, bool)
             and value > getattr(project, name)}
    if not caller.is_operator:
        over_grant = [name for name, value in asked.items() if value > quota_allowance(project, name)]
        if over_grant:
            raise Forbidden(
                "Only an operator may raise these settings above what the project was granted.",
                fields={name: [f"at most {quota_allowance(project, name)} for this project; ask an operator for more"]
                        for name in over_grant},
                limits={name: quota_allowance(project, name) for name in over_grant})
        return {}
    over_ceiling = [name for name, value in asked.items() if value > quota_ceiling(name)]
    if over_ceiling:
        raise ValidationFailed(
            "These settings are above the broker's ceiling.",
            fields={name: [f"at most {quota_ceiling(name)}, the broker's ceiling (BROKER_CEILING_{name.upper()})"]
                    for name in over_ceiling},
            limits={name: quota_ceiling(name) for name in over_ceiling})
    return {name: value for name, value in changes.items() if name in QUOTA_FIELDS and isinstance(value, int)}
