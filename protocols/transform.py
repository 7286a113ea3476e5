"""Converting a protocol payload to a version its recipient supports (SPEC "Transformation").

Routing calls `transform_for` for every protocol message; the REST dry run calls
`transform_preview`. Both go through `adapt`, so a payload converts the same way whether
an agent is testing an adapter or a message is being delivered.

Everything here is pure: no writes, and the inputs are never mutated. At most two queries per
message that needs converting (the recipient's registered versions of the protocol, and the
project's adapters from the sender's version); none when the recipient takes the sender's version.

Choices, since the SPEC leaves them open:

* A registered (declared) adapter from the sender's version to a target replaces the built-in
  one for that target rather than running before it: the project said exactly how to convert,
  so the broker does not also drop fields behind its back. A declared adapter that should also
  drop fields says so with `drop` operations. If its result does not validate, that target fails;
  the broker does not fall back to the built-in adapter and second-guess the project.
* The built-in adapter drops top-level properties the target's root schema does not declare in
  `properties` or match with `patternProperties`, unless the schema explicitly admits extra
  properties (`additionalProperties` true or a schema). An absent `additionalProperties` counts as
  "not declared, so dropped": a field a newer version added means nothing to an older recipient,
  which is the SPEC's own example. Only the root object is considered; nested objects, `$ref`,
  `allOf` and friends are left to validation, which then decides whether the target can take it.
* Targets are tried best first: versions with the sender's major before others (same major means
  the same meaning), each group highest first. The first valid result wins.
"""

import copy
import json
from dataclasses import dataclass
from typing import Any

from broker_site.errors import Incompatible, ValidationFailed
from projects.models import Project
from protocols import selectors
from protocols.models import Protocol, ProtocolAdapter
from protocols.schemas import PatternRefused, pattern_compiled, payload_validate
from protocols.versions import parse_version, version_key
from sessions_app.models import AgentSession

ADAPTER_DECLARED = "declared"
ADAPTER_BUILT_IN = "built_in"
MAX_OPERATIONS = 50
MAX_FIELD = 100
MAX_DEFAULT_BYTES = 64 * 1024
OPERATION_KEYS: dict[str, frozenset[str]] = {
    "rename": frozenset({"op", "from", "to"}),
    "drop": frozenset({"op", "field"}),
    "set_default": frozenset({"op", "field", "value"}),
}


@dataclass(frozen=True)
class Transformed:
    """What to deliver: the recipient-side protocol and payload, and the versions if it was converted.

    When the recipient takes the sender's version, `payload` is the very object passed in and
    both `transformed_*` are None.
    """

    protocol: Protocol
    payload: dict
    transformed_from: str | None
    transformed_to: str | None


@dataclass(frozen=True)
class Attempt:
    """One try at converting a payload to one target version."""

    version: str
    adapter: str | None  # ADAPTER_DECLARED, ADAPTER_BUILT_IN, or None when the target was not tried
    adapter_id: str | None
    payload: dict | None  # None when it failed
    reason: str | None = None

    def as_tried(self) -> dict[str, Any]:
        return {"version": self.version, "adapter": self.adapter, "reason": self.reason}


class _Unadaptable(Exception):
    """A declared operation cannot apply to this payload (say, a rename onto a field already present)."""


# --- declared operations -------------------------------------------------------------------------

def _path(value: Any, where: str) -> str:
    # A dotted path reaches into nested objects ("meta.sent_by"); so a property whose own name
    # contains a dot cannot be addressed. Empty segments ("a..b", ".a") are refused.
    if not isinstance(value, str) or not value or len(value) > MAX_FIELD or "" in value.split("."):
        raise ValidationFailed(f"{where} is a property name, or a dotted path into nested objects such as "
                               f"meta.sent_by, of 1 to {MAX_FIELD} characters.", field=where, max_length=MAX_FIELD)
    return value


def operations_check(raw: Any, *, field: str = "operations") -> list[dict[str, Any]]:
    """The adapter operations, checked strictly and returned as a clean copy; ValidationFailed naming the operation."""
    if not isinstance(raw, list) or len(raw) > MAX_OPERATIONS:
        raise ValidationFailed(f"{field} is a list of at most {MAX_OPERATIONS} operations.", field=field,
                               limit=MAX_OPERATIONS)
    cleaned = []
    for index, op in enumerate(raw):
        where = f"{field}[{index}]"
        kind = op.get("op") if isinstance(op, dict) else None
        if not isinstance(kind, str) or kind not in OPERATION_KEYS:
            raise ValidationFailed(f"{where} needs an op, one of {', '.join(OPERATION_KEYS)}.", field=f"{where}.op",
                                   allowed=list(OPERATION_KEYS))
        keys = OPERATION_KEYS[kind]
        unknown, missing = sorted(set(op) - keys), sorted(keys - set(op))
        if unknown or missing:
            raise ValidationFailed(f"{where} ({kind}) takes exactly {', '.join(sorted(keys))}.", field=where,
                                   unknown=unknown, missing=missing, expected=sorted(keys))
        if kind == "rename":
            source, target = _path(op["from"], f"{where}.from"), _path(op["to"], f"{where}.to")
            a, b = source.split("."), target.split(".")
            # Moving a field into or out of itself would build a cycle or lose it.
            if a[: len(b)] == b or b[: len(a)] == a:
                raise ValidationFailed(f"{where} renames {source} to {target}; neither may contain the other.",
                                       field=f"{where}.to")
            cleaned.append({"op": kind, "from": source, "to": target})
        elif kind == "drop":
            cleaned.append({"op": kind, "field": _path(op["field"], f"{where}.field")})
        else:
            try:
                size = len(json.dumps(op["value"], separators=(",", ":")).encode())
            except (TypeError, ValueError):  # only a non-REST caller can hand over something not JSON
                raise ValidationFailed(f"{where}.value must be plain JSON.", field=f"{where}.value") from None
            if size > MAX_DEFAULT_BYTES:
                raise ValidationFailed(f"{where}.value is {size} bytes serialized; the limit is {MAX_DEFAULT_BYTES}.",
                                       field=f"{where}.value", limit=MAX_DEFAULT_BYTES, size=size)
            cleaned.append({"op": kind, "field": _path(op["field"], f"{where}.field"), "value": op["value"]})
    return cleaned


def _parent(document: dict, path: str, *, create: bool) -> tuple[dict | None, str]:
    """The object holding the last segment of `path`, and that segment; None if a step is not an object."""
    *steps, leaf = path.split(".")
    node: Any = document
    for step in steps:
        if not isinstance(node, dict):
            return None, leaf
        if step not in node and create:
            node[step] = {}
        node = node.get(step)
    return (node if isinstance(node, dict) else None), leaf


def operations_apply(operations: list[dict[str, Any]], payload: dict) -> dict:
    """`payload` with the operations applied in order, on a deep copy; _Unadaptable when one cannot apply.

    Absent fields are not errors: a rename or drop of a field the payload lacks does nothing,
    since optional fields are often absent.
    """
    document = copy.deepcopy(payload)
    for op in operations:
        if op["op"] == "rename":
            source, leaf = _parent(document, op["from"], create=False)
            if source is None or leaf not in source:
                continue
            target, target_leaf = _parent(document, op["to"], create=True)
            if target is None:
                raise _Unadaptable(f"rename {op['from']} -> {op['to']}: part of {op['to']} is not an object")
            if target_leaf in target:
                # Refused rather than overwritten: silently losing the existing value is worse.
                raise _Unadaptable(f"rename {op['from']} -> {op['to']}: {op['to']} is already present")
            target[target_leaf] = source.pop(leaf)
        elif op["op"] == "drop":
            holder, leaf = _parent(document, op["field"], create=False)
            if holder is not None:
                holder.pop(leaf, None)
        else:
            holder, leaf = _parent(document, op["field"], create=True)
            if holder is None:
                raise _Unadaptable(f"set_default {op['field']}: part of {op['field']} is not an object")
            if leaf not in holder:
                holder[leaf] = copy.deepcopy(op["value"])
    return document


# --- the built-in adapter ------------------------------------------------------------------------

def _pattern(text: Any) -> Any:
    # The same linear-time engine (RE2) validation uses (protocols.schemas); a pattern it cannot
    # run was refused at registration, and matches nothing here should one predate that check.
    try:
        return pattern_compiled(text) if isinstance(text, str) else None
    except PatternRefused:
        return None


def built_in_adapt(schema: Any, payload: dict) -> dict:
    """`payload` without the top-level properties `schema` does not declare (see the module docstring)."""
    if not isinstance(schema, dict):
        return payload
    extra = schema.get("additionalProperties")
    properties, patterns = schema.get("properties"), schema.get("patternProperties")
    if extra is True or isinstance(extra, dict):
        return payload  # the target explicitly admits properties it does not name
    if extra is None and not isinstance(properties, dict) and not isinstance(patterns, dict):
        return payload  # an open object that names nothing: there is nothing to call undeclared
    declared = set(properties) if isinstance(properties, dict) else set()
    compiled = [p for p in (_pattern(t) for t in (patterns if isinstance(patterns, dict) else {})) if p is not None]
    # A shallow copy: values are shared with the input but never mutated.
    return {key: value for key, value in payload.items()
            if key in declared or any(p.search(key) for p in compiled)}


# --- one conversion, shared by delivery and the dry run ------------------------------------------

def adapt(payload: dict, target: Protocol, adapter: ProtocolAdapter | None) -> Attempt:
    """Convert `payload` to `target` with the declared `adapter`, or the built-in one without, and validate it."""
    kind = ADAPTER_DECLARED if adapter is not None else ADAPTER_BUILT_IN
    adapter_id = str(adapter.pk) if adapter is not None else None
    try:
        converted = operations_apply(adapter.operations, payload) if adapter is not None \
            else built_in_adapt(target.schema, payload)
        payload_validate(target, converted)
    except _Unadaptable as err:
        return Attempt(target.version, kind, adapter_id, None, str(err))
    except ValidationFailed as err:
        return Attempt(target.version, kind, adapter_id, None, err.message)
    return Attempt(target.version, kind, adapter_id, converted)


def _candidates(version: str, declared: list[str]) -> list[str]:
    major = version_key(version)[0]
    return sorted(declared, key=lambda v: (version_key(v)[0] == major, version_key(v)), reverse=True)


def transform_for(project: Project, protocol: Protocol, payload: dict, recipient: AgentSession) -> Transformed:
    """What `recipient` should receive for a `protocol` message carrying `payload`.

    `protocol` is the sender's registered protocol and `payload` already validates against it;
    `recipient` is a session of `project`. Unchanged when the recipient declares the sender's
    version; otherwise converted to the best version it declares that yields a valid payload.
    Raises Incompatible when the recipient declares no version of the protocol, or when no
    version it declares can take the payload (details.tried says why for each).

    Targets and adapters are `project`'s own: when `protocol` is another project's shared one,
    only an exact version match passes through unconverted.
    """
    name, version = protocol.name, protocol.version
    declared = list((recipient.supported_protocols or {}).get(name) or [])
    if version in declared:
        return Transformed(protocol, payload, None, None)
    label = recipient.label
    if not declared:
        suggestion = f"session {label} should add {name} {version}"
        raise Incompatible(f"Session {label} does not support {name}; {suggestion}.",
                           protocol=name, version=version, recipient=str(recipient.pk), recipient_versions=[],
                           suggestion=suggestion)

    candidates = _candidates(version, declared)
    registered = {p.version: p for p in selectors.protocols_named(project, name, candidates)}
    adapters = selectors.adapters_from(project, name, version, list(registered)) if registered else {}
    tried: list[dict[str, Any]] = []
    for candidate in candidates:
        target = registered.get(candidate)
        if target is None:
            tried.append({"version": candidate, "adapter": None,
                          "reason": f"{name} {candidate} is not registered in project {project.pk}"})
            continue
        attempt = adapt(payload, target, adapters.get(candidate))
        if attempt.payload is not None:
            return Transformed(target, attempt.payload, version, candidate)
        tried.append(attempt.as_tried())

    best = next((v for v in candidates if v in registered), candidates[0])
    suggestion = (f"register an adapter from {name} {version} to {best}, "
                  f"or session {label} should add {name} {version}")
    raise Incompatible(f"No version of {name} that session {label} supports ({', '.join(candidates)}) "
                       f"can take this {name} {version} payload.",
                       protocol=name, version=version, recipient=str(recipient.pk), recipient_versions=candidates,
                       tried=tried, suggestion=suggestion)


def transform_preview(project: Project, name: str, version: str, payload: Any, target_version: str) -> dict[str, Any]:
    """The dry run: what a `name` `version` payload becomes at `target_version` in `project`, changing nothing.

    The payload must validate against the source version, as a sent message must.
    """
    parse_version(target_version, field="target_version")
    source = selectors.protocol_get(project, name, version)
    payload_validate(source, payload)
    if target_version == version:
        return {"payload": payload, "transformed_from": None, "transformed_to": None, "adapter": None,
                "adapter_id": None}
    target = selectors.protocol_get(project, name, target_version)
    attempt = adapt(payload, target, selectors.adapters_from(project, name, version, [target_version])
                    .get(target_version))
    if attempt.payload is None:
        raise Incompatible(f"This {name} {version} payload does not convert to {target_version}: {attempt.reason}",
                           protocol=name, version=version, target_version=target_version, tried=[attempt.as_tried()])
    return {"payload": attempt.payload, "transformed_from": version, "transformed_to": target_version,
            "adapter": attempt.adapter, "adapter_id": attempt.adapter_id}
