"""Negotiation between sessions: pure functions over what each session declared at connect.

Nothing here reads the database, so the REST view, the MCP tool and routing can all call
it with sessions they already loaded (and scoped to their project).
"""

from typing import Any

from broker_site.errors import ValidationFailed
from protocols.versions import (
    PROTOCOL_NAME_PATTERN,
    VersionRange,
    is_protocol_name,
    parse_range,
    parse_version,
    version_key,
)
from sessions_app.models import AgentSession

MATRIX_MIN = 2
MATRIX_MAX = 50
MAX_REQUIRED = 50


def _label(session: AgentSession) -> str:
    return session.name or str(session.id)


def _versions(session: AgentSession, name: str) -> list[str]:
    return sorted(set((session.supported_protocols or {}).get(name, [])), key=version_key)


def _highest(versions: set[str] | list[str]) -> str | None:
    return max(versions, key=version_key, default=None)


REQUIRED_FORMAT = 'a name, or {"name": ..., "version": "2.1.0"} or {"name": ..., "version_range": ">=2.0.0,<3.0.0"}'


def _required(raw: Any) -> list[tuple[str, VersionRange | None]]:
    """Normalise required_protocols: names, or {"name", "version"} (one exact version) or {"name",
    "version_range"} objects. Both version fields at once are refused rather than intersected: an exact
    version inside a range is just the version, and one outside it is a mistake the caller should see."""
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_REQUIRED:
        raise ValidationFailed(f"required_protocols is a list of at most {MAX_REQUIRED} entries.",
                               field="required_protocols", limit=MAX_REQUIRED)
    out: list[tuple[str, VersionRange | None]] = []
    for index, item in enumerate(raw):
        where = f"required_protocols[{index}]"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or not set(item) <= {"name", "version", "version_range"}:
            raise ValidationFailed(f"Each required protocol is {REQUIRED_FORMAT}.", field=where,
                                   constraint=REQUIRED_FORMAT)
        name = item.get("name")
        if not is_protocol_name(name):
            raise ValidationFailed("A required protocol is named by its snake_case name.", field=f"{where}.name",
                                   constraint=PROTOCOL_NAME_PATTERN)
        out.append((name, _wanted(item, where)))
    return out


def _wanted(item: dict[str, Any], where: str) -> VersionRange | None:
    """The versions a required protocol accepts: one exact `version`, a `version_range`, or any (None)."""
    version, version_range = item.get("version"), item.get("version_range")
    if version is not None and version_range is not None:
        both = [f"{where}.version", f"{where}.version_range"]
        raise ValidationFailed(f"{where} gives both version and version_range; give one of them.", field=where,
                               fields={name: ["give version or version_range, not both"] for name in both})
    if version is not None:
        exact = parse_version(version, field=f"{where}.version")
        return VersionRange(text=f"=={exact}", clauses=(("==", exact),))
    return parse_range(version_range, field=f"{where}.version_range") if version_range is not None else None


def _protocol_entry(a: AgentSession, b: AgentSession, name: str) -> dict[str, Any]:
    a_versions, b_versions = _versions(a, name), _versions(b, name)
    entry: dict[str, Any] = {"a_versions": a_versions, "b_versions": b_versions}
    common = set(a_versions) & set(b_versions)
    if common:
        entry.update(status="compatible", version=_highest(common))
    elif not b_versions:
        entry.update(status="only_a", reason=f"Session {_label(b)} does not support {name}.",
                     suggestion=f"session {_label(b)} should add {name} {a_versions[-1]}")
    elif not a_versions:
        entry.update(status="only_b", reason=f"Session {_label(a)} does not support {name}.",
                     suggestion=f"session {_label(a)} should add {name} {b_versions[-1]}")
    else:
        entry.update(status="no_common_version",
                     reason=(f"Sessions {_label(a)} ({', '.join(a_versions)}) and {_label(b)} "
                             f"({', '.join(b_versions)}) share no version of {name}."),
                     suggestion=(f"session {_label(a)} should add {name} {b_versions[-1]}, "
                                 f"or session {_label(b)} should add {name} {a_versions[-1]}"))
    return entry


def _check_required(a: AgentSession, b: AgentSession, name: str, wanted: VersionRange | None) -> dict[str, Any]:
    """Whether a required protocol has a common version in range, and if not, why and what to do."""
    def fits(v: str) -> bool:
        return wanted is None or wanted(v)

    a_ok = [v for v in _versions(a, name) if fits(v)]
    b_ok = [v for v in _versions(b, name) if fits(v)]
    common = set(a_ok) & set(b_ok)
    result: dict[str, Any] = {"name": name, "version_range": wanted.text if wanted else None,
                              "satisfied": bool(common), "version": _highest(common)}
    if common:
        return result
    scope = f"{name} {wanted.text}" if wanted else name
    if not a_ok and not b_ok:
        result["reason"] = f"Required protocol {scope} is supported by neither session."
        result["suggestion"] = (f"sessions {_label(a)} and {_label(b)} should both add a version of {scope}"
                                if wanted else f"sessions {_label(a)} and {_label(b)} should both add {name}")
    elif not b_ok:
        result["reason"] = f"Required protocol {scope} is not supported by session {_label(b)}."
        result["suggestion"] = f"session {_label(b)} should add {name} {a_ok[-1]}"
    elif not a_ok:
        result["reason"] = f"Required protocol {scope} is not supported by session {_label(a)}."
        result["suggestion"] = f"session {_label(a)} should add {name} {b_ok[-1]}"
    else:
        result["reason"] = f"Sessions {_label(a)} and {_label(b)} share no version of required protocol {scope}."
        result["suggestion"] = (f"session {_label(a)} should add {name} {b_ok[-1]}, "
                                f"or session {_label(b)} should add {name} {a_ok[-1]}")
    return result


def negotiate(a: AgentSession, b: AgentSession, required_protocols: list | None = None) -> dict[str, Any]:
    """What sessions `a` and `b` can exchange: per protocol the highest common version, features, and why not.

    With required_protocols, compatible means every one has a common version in its range.
    Without, it means at least one protocol version in common, or neither side declares any
    protocol (then they exchange free-form messages only).
    """
    required = _required(required_protocols)
    a_protocols, b_protocols = a.supported_protocols or {}, b.supported_protocols or {}
    protocols = {name: _protocol_entry(a, b, name) for name in sorted(set(a_protocols) | set(b_protocols))}
    supported = {name: e["version"] for name, e in protocols.items() if e["status"] == "compatible"}
    reasons = [e["reason"] for e in protocols.values() if "reason" in e]
    suggestions = [e["suggestion"] for e in protocols.values() if "suggestion" in e]

    checks = [_check_required(a, b, name, wanted) for name, wanted in required]
    missing = [{k: c[k] for k in ("name", "version_range", "reason")} for c in checks if not c["satisfied"]]
    for check in checks:
        if not check["satisfied"]:
            reasons.append(check["reason"])
            if check["suggestion"] not in suggestions:
                suggestions.append(check["suggestion"])

    if required:
        compatible = not missing
    else:
        compatible = bool(supported) or (not a_protocols and not b_protocols)
        if not compatible:
            reasons.insert(0, f"Sessions {_label(a)} and {_label(b)} share no protocol version.")

    a_features, b_features = set(a.supported_features or []), set(b.supported_features or [])
    result: dict[str, Any] = {
        "compatible": compatible,
        "session_a": str(a.id),
        "session_b": str(b.id),
        "session_a_name": a.name,
        "session_b_name": b.name,
        "supported_protocols": supported,
        "unsupported_protocols": [name for name, e in protocols.items() if e["status"] != "compatible"],
        "protocols": protocols,
        "feature_intersection": sorted(a_features & b_features),
        "features_missing": {"session_a": sorted(b_features - a_features),
                             "session_b": sorted(a_features - b_features)},
        "missing_required": missing,
        "reasons": reasons,
        "suggestions": suggestions,
    }
    if required:
        result["required_protocols"] = checks
    if not a_protocols and not b_protocols:
        result["free_form_only"] = True
    return result


def compatibility_matrix(sessions: list[AgentSession]) -> dict[str, Any]:
    """Negotiate every pair of 2 to 50 distinct sessions."""
    if not MATRIX_MIN <= len(sessions) <= MATRIX_MAX:
        raise ValidationFailed(f"A compatibility matrix needs {MATRIX_MIN} to {MATRIX_MAX} sessions.",
                               field="session_ids", min=MATRIX_MIN, max=MATRIX_MAX, given=len(sessions))
    if len({s.pk for s in sessions}) != len(sessions):
        raise ValidationFailed("session_ids names the same session more than once.", field="session_ids")
    pairs = []
    for i, a in enumerate(sessions):
        for b in sessions[i + 1:]:
            result = negotiate(a, b)
            pairs.append({"session_a": result["session_a"], "session_b": result["session_b"],
                          "compatible": result["compatible"], "supported_protocols": result["supported_protocols"]})
    return {
        "sessions": [str(s.id) for s in sessions],
        "session_names": {str(s.id): s.name for s in sessions},
        "pairs": pairs,
        "compatible_pairs": sum(1 for p in pairs if p["compatible"]),
    }

