"""Checking protocol schemas at registration, and payloads against them at send.

Validators are compiled once per protocol and cached by the protocol's UUID. That key is
sound because a registered schema never changes (there is no update, only delete and
register again, which mints a new UUID).

A schema is a tenant's code that the broker runs on every send, so nothing in it may cost more
than linear time in the payload, or one agent could stall every other tenant:

* Patterns (`pattern`, `patternProperties`, and so `additionalProperties` and `propertyNames`)
  run on RE2, which matches in linear time; Python's `re` backtracks (`^(a+)+$` on
  "aaaa...!" doubles with each character) and holds the GIL while it does. JSON Schema patterns
  are ECMA-262; the broker accepts the subset RE2 can run: no lookahead or lookbehind, no
  backreferences; `\\uXXXX` escapes are read as ECMA writes them. A pattern outside it is refused
  at registration, naming its path.
* `uniqueItems` hashes each item's canonical form (O(n)); jsonschema compares every pair when
  items are not sortable (3,000 objects took 8 s). `unevaluatedItems` / `unevaluatedProperties`
  look keys up in a set, not a list.
* Whatever is left (a recursive `$ref` under `anyOf` is exponential in the payload's depth) is
  cut off by a budget of keyword evaluations per payload (BROKER_MAX_VALIDATION_STEPS).
* `format: regex` only compiles the payload's string with Python's `re` (no match is run), which
  is linear in its length, so it keeps jsonschema's checker.
"""

from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import Any

import re2
import referencing.jsonschema
from django.conf import settings
from jsonschema import Draft202012Validator, _legacy_keywords, _utils
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from jsonschema.protocols import Validator
from jsonschema.validators import extend, validator_for
from jsonschema_specifications import REGISTRY as METASCHEMAS
from referencing.exceptions import Unresolvable

from broker_site.errors import ValidationFailed
from broker_site.jsoncodec import json_size

MAX_MESSAGE_CHARS = 500
VALIDATOR_CACHE_SIZE = 1024
PATTERN_CACHE_SIZE = 4096
MESSAGE_CHARS_PER_STEP = 100
# Values that are instances, not schemas: a "pattern" or "$ref" inside them is data.
_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})
_IDENTIFIER = re2.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")

# The metaschemas only, and no `retrieve`: jsonschema's default registry would fetch a remote
# `$ref` over HTTP, letting any agent make the broker issue requests to arbitrary URLs.
_REGISTRY = METASCHEMAS

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is answered to its author, not logged by RE2


def _short(text: str) -> str:
    # jsonschema messages quote the failing instance, which may be a whole payload.
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def json_path(parts: list[str | int]) -> str:
    """`$.properties.a['$ref']`: the JSON path jsonschema's errors use, for a path we walked ourselves."""
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _IDENTIFIER.search(part):
            path += f".{part}"
        else:
            path += "['" + part.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return path


# --- patterns, on RE2 ----------------------------------------------------------------------------

class PatternRefused(ValueError):
    """A pattern RE2 cannot compile (lookaround, a backreference, or simply invalid)."""


def _ecma_to_re2(text: str) -> str:
    # ECMA writes a code point as \uXXXX; RE2 as \x{XXXX}. Escaped backslashes are kept as they are.
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            pair = text[i:i + 2]
            hex4 = text[i + 2:i + 6]
            if pair == "\\u" and len(hex4) == 4 and all(c in "0123456789abcdefABCDEF" for c in hex4):
                out.append("\\x{" + hex4 + "}")
                i += 6
                continue
            out.append(pair)
            i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


@lru_cache(maxsize=PATTERN_CACHE_SIZE)
def pattern_compiled(text: str) -> Any:
    """`text` compiled by RE2, for `.search`; PatternRefused when RE2 cannot run it."""
    try:
        return re2.compile(_ecma_to_re2(text), _RE2_OPTIONS)
    except re2.error as err:
        raise PatternRefused(str(err.args[0].decode() if err.args and isinstance(err.args[0], bytes) else err)) \
            from None


def _search(pattern: str, subject: str) -> bool:
    return pattern_compiled(pattern).search(subject) is not None


def _pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator, patterns, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator, additional, instance, schema):
    # jsonschema's own, with its one regex (the patternProperties, or-ed) on RE2.
    if not validator.is_type(instance, "object"):
        return
    properties, patterns = schema.get("properties", {}), list(schema.get("patternProperties", {}))
    extras = {key for key in instance
              if key not in properties and not any(_search(p, key) for p in patterns)}
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            joined = ", ".join(repr(each) for each in sorted(extras))
            yield ValidationError(f"{joined} {verb} not match any of the regexes: "
                                  f"{', '.join(repr(p) for p in sorted(patterns))}")
        else:
            listed, verb = _utils.extras_msg(sorted(extras, key=str))
            yield ValidationError(f"Additional properties are not allowed ({listed} {verb} unexpected)")


# --- linear uniqueItems and unevaluated* ---------------------------------------------------------

_TRUE, _FALSE = object(), object()


def _canonical(value: Any) -> Any:
    """A hashable form equal for JSON-equal values: 1 and 1.0 alike, true and 1 not, key order ignored."""
    kind = type(value)
    if kind is bool:  # Python says True == 1; JSON Schema does not
        return _TRUE if value else _FALSE
    if kind is dict:
        return frozenset([(key, _canonical(item)) for key, item in value.items()])
    if kind is list or kind is tuple:
        return tuple([_canonical(item) for item in value])
    return value  # str, int, float (equal int and float hash alike), None


def _unique_items(validator, unique, instance, schema):
    if not unique or not validator.is_type(instance, "array"):
        return
    _charge(len(instance))
    seen: dict[Any, int] = {}
    for index, item in enumerate(instance):
        first = seen.setdefault(_canonical(item), index)
        if first != index:
            yield ValidationError(f"has non-unique elements: items {first} and {index} are equal")
            return


def _unevaluated_items(find: Callable) -> Callable:
    def unevaluated_items(validator, unevaluated, instance, schema):
        if not validator.is_type(instance, "array"):
            return
        evaluated = set(find(validator, instance, schema))
        rest = [item for index, item in enumerate(instance) if index not in evaluated]
        if rest:
            listed, verb = _utils.extras_msg(rest)
            yield ValidationError(f"Unevaluated items are not allowed ({listed} {verb} unexpected)")
    return unevaluated_items


def _unevaluated_properties(find: Callable) -> Callable:
    # Its helper runs Python's re on patternProperties; schema_check refuses the two together.
    def unevaluated_properties(validator, unevaluated, instance, schema):
        if not validator.is_type(instance, "object"):
            return
        evaluated = set(find(validator, instance, schema))
        invalid = [key for key in instance if key not in evaluated
                   and next(validator.descend(instance[key], unevaluated, path=key, schema_path=key), None)]
        if not invalid:
            return
        if unevaluated is False:
            listed, verb = _utils.extras_msg(sorted(invalid, key=str))
            yield ValidationError(f"Unevaluated properties are not allowed ({listed} {verb} unexpected)")
        else:
            listed, verb = _utils.extras_msg(invalid)
            yield ValidationError(f"Unevaluated properties are not valid under the given schema "
                                  f"({listed} {verb} unevaluated and invalid)")
    return unevaluated_properties


# --- a budget of keyword evaluations per payload -------------------------------------------------

class _OverBudget(Exception):
    pass


@dataclass
class _Budget:
    left: int


_budget: ContextVar[_Budget | None] = ContextVar("validation_budget", default=None)


def _charge(steps: int) -> None:
    budget = _budget.get()
    if budget is not None:
        budget.left -= steps
        if budget.left < 0:
            raise _OverBudget


def _counted(keyword: Callable) -> Callable:
    """One step per evaluation, and more for each error by its message's length.

    jsonschema's messages quote the failing instance, so an error about a large value costs as
    much as the value: an anyOf of many branches over a big payload would otherwise repeat it.
    """
    @wraps(keyword)
    def counted(validator, value, instance, schema):
        _charge(1)
        for error in keyword(validator, value, instance, schema) or ():
            _charge(len(error.message) // MESSAGE_CHARS_PER_STEP)
            yield error
    return counted


_SAFE_KEYWORDS: dict[str, Callable] = {
    "pattern": _pattern, "patternProperties": _pattern_properties, "additionalProperties": _additional_properties,
    "uniqueItems": _unique_items,
}
_SAFE_BY_DIALECT: dict[str, dict[str, Callable]] = {
    "https://json-schema.org/draft/2020-12/schema": {
        "unevaluatedItems": _unevaluated_items(_utils.find_evaluated_item_indexes_by_schema),
        "unevaluatedProperties": _unevaluated_properties(_utils.find_evaluated_property_keys_by_schema)},
    "https://json-schema.org/draft/2019-09/schema": {
        "unevaluatedItems": _unevaluated_items(_legacy_keywords.find_evaluated_item_indexes_by_schema),
        "unevaluatedProperties": _unevaluated_properties(_legacy_keywords.find_evaluated_property_keys_by_schema)},
}


@lru_cache(maxsize=16)
def _safe(cls: type[Validator]) -> type[Validator]:
    """`cls` with the linear keywords above, every keyword counted against the payload's budget."""
    dialect = cls.META_SCHEMA.get("$id", "")
    replaced = {name: fn for name, fn in {**_SAFE_KEYWORDS, **_SAFE_BY_DIALECT.get(dialect, {})}.items()
                if name in cls.VALIDATORS}
    keywords = {**cls.VALIDATORS, **replaced}
    return extend(cls, {name: _counted(fn) for name, fn in keywords.items()})



# --- registration ---------------------------------------------------------------------------------

def _validator_class(schema: dict[str, Any], field: str) -> type[Validator]:
    declared = schema.get("$schema")
    if declared is None:
        return Draft202012Validator
    cls = validator_for(schema, default=None) if isinstance(declared, str) else None
    if cls is None:
        raise ValidationFailed(f"{field} declares a $schema dialect the broker does not know.",
                               field=field, path="$['$schema']", constraint="$schema",
                               value=str(declared)[:200])
    return cls


def _subschemas(node: Any, path: list[str | int]) -> Iterator[tuple[list[str | int], dict]]:
    """Every object in the schema document with its path, but not inside data (enum, const, ...).

    Everything else counts, unknown keywords too, since a `$ref` may point anywhere in the document.
    """
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            if key not in _DATA_KEYWORDS:
                yield from _subschemas(value, [*path, key])
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _subschemas(value, [*path, index])


def _patterns_check(path: list[str | int], node: dict, field: str) -> None:
    found = [([*path, "pattern"], node["pattern"])] if isinstance(node.get("pattern"), str) else []
    if isinstance(node.get("patternProperties"), dict):
        found += [([*path, "patternProperties", key], key) for key in node["patternProperties"]]
    for where, pattern in found:
        try:
            pattern_compiled(pattern)
        except PatternRefused as err:
            at = json_path(where)
            raise ValidationFailed(
                f"{field} has a pattern the broker cannot run at {at}: {_short(repr(pattern))} ({err}). "
                "Patterns are the ECMA-262 subset RE2 runs in linear time: no lookaround, no backreferences.",
                field=field, path=at, constraint="pattern", pattern=_short(pattern), reason=str(err)) from None


def _refs(node: Any, path: list[str | int], resolver: Any, spec: Any) -> Iterator[tuple[list, str, str, Any]]:
    """(path, keyword, reference, the resolver in force there) for every `$ref` and `$dynamicRef`."""
    if isinstance(node, dict):
        if path and isinstance(spec.id_of(node), str):  # a nested $id changes the base of what it holds
            resolver = resolver.in_subresource(spec.create_resource(node))
        for keyword in ("$ref", "$dynamicRef"):
            if isinstance(node.get(keyword), str):
                yield path, keyword, node[keyword], resolver
        for key, value in node.items():
            if key not in _DATA_KEYWORDS:
                yield from _refs(value, [*path, key], resolver, spec)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _refs(value, [*path, index], resolver, spec)


def _refs_check(schema: dict[str, Any], cls: type[Validator], field: str) -> None:
    """Every `$ref` (and `$dynamicRef`) resolves within the document or to a metaschema; nothing is fetched."""
    spec = referencing.jsonschema.specification_with(cls.META_SCHEMA.get("$id") or cls.META_SCHEMA.get("id"))
    root = spec.create_resource(schema)
    base = root.id() or ""
    try:
        registry = _REGISTRY.with_resource(base, root).crawl()
        refs = list(_refs(schema, [], registry.resolver(base_uri=base), spec))
    except ValueError as err:  # urllib's word on an $id that is no URI ("Invalid IPv6 URL")
        raise ValidationFailed(f"{field} has an $id that is not a URI: {_short(str(err))}.", field=field,
                               constraint="$id", reason=_short(str(err))) from None
    for path, keyword, ref, resolver in refs:
        try:
            resolver.lookup(ref)
        except (Unresolvable, ValueError):
            at = json_path([*path, keyword])
            raise ValidationFailed(
                f"{field} has a {keyword} the broker cannot resolve at {at}: {_short(ref)}. Only references "
                "within the schema and to the JSON Schema metaschemas resolve; nothing is fetched.",
                field=field, path=at, constraint="$ref", ref=_short(ref)) from None


def schema_check(schema: Any, *, field: str = "schema") -> None:
    """Refuse anything that is not a valid JSON Schema object within the size limit, or that the broker cannot run.

    The error names the JSON path inside the schema and the constraint it broke: a metaschema
    constraint, a pattern RE2 cannot run, or a `$ref` that does not resolve.
    """
    if not isinstance(schema, dict):
        raise ValidationFailed(f"{field} must be a JSON object (a JSON Schema).", field=field,
                               path="$", constraint="type", expected="object")
    limit = settings.BROKER["MAX_SCHEMA_BYTES"]
    try:
        size = json_size(schema)
    except (TypeError, ValueError):  # only a non-REST caller can hand over something not JSON
        raise ValidationFailed(f"{field} must be plain JSON.", field=field, constraint="json") from None
    if size > limit:
        raise ValidationFailed(f"{field} is {size} bytes serialized; the limit is {limit}.",
                               field=field, constraint="max_bytes", limit=limit, size=size)
    cls = _validator_class(schema, field)
    try:
        cls.check_schema(schema)
        subschemas = list(_subschemas(schema, []))
        for path, node in subschemas:
            _patterns_check(path, node, field)
        # jsonschema's unevaluatedProperties runs Python's re on patternProperties it can see.
        evaluated = next((p for p, n in subschemas if "unevaluatedProperties" in n), None)
        patterned = next((p for p, n in subschemas if isinstance(n.get("patternProperties"), dict)), None)
        if evaluated is not None and patterned is not None:
            at = json_path([*evaluated, "unevaluatedProperties"])
            raise ValidationFailed(
                f"{field} uses unevaluatedProperties (at {at}) and patternProperties (at "
                f"{json_path([*patterned, 'patternProperties'])}) together, which the broker cannot check in "
                "linear time; use additionalProperties beside the patternProperties instead.",
                field=field, path=at, constraint="unevaluatedProperties")
        _refs_check(schema, cls, field)
    except SchemaError as err:
        raise ValidationFailed(
            f"{field} is not a valid JSON Schema: at {err.json_path}, {_short(err.message)}",
            field=field, path=err.json_path, constraint=err.validator, reason=_short(err.message),
            metaschema_path="/".join(str(p) for p in err.schema_path)) from None
    except RecursionError:
        raise ValidationFailed(f"{field} is nested too deeply.", field=field, constraint="depth") from None


# --- payloads ------------------------------------------------------------------------------------

class _CacheKey:
    """Hashes and compares by protocol id only, carrying the protocol along to compile on a miss
    (a row read with its schema deferred reads it then, and only then)."""

    __slots__ = ("protocol", "protocol_id")

    def __init__(self, protocol: Any) -> None:
        self.protocol, self.protocol_id = protocol, protocol.id

    @property
    def schema(self) -> dict[str, Any]:
        return self.protocol.schema

    def __hash__(self) -> int:
        return hash(self.protocol_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _CacheKey) and other.protocol_id == self.protocol_id


@lru_cache(maxsize=VALIDATOR_CACHE_SIZE)
def _compiled(key: _CacheKey) -> Validator:
    cls = _validator_class(key.schema, "schema")
    # Formats are asserted, not just annotated: agents write "format": "uuid" expecting it to hold.
    return _safe(cls)(key.schema, registry=_REGISTRY, format_checker=cls.FORMAT_CHECKER)


def payload_validate(protocol: Any, payload: Any) -> None:
    """Refuse a payload its protocol's schema rejects, naming the best-matching error.

    `protocol` is anything with `.id` (unique per registration) and `.schema`. The work is
    bounded: past BROKER_MAX_VALIDATION_STEPS keyword evaluations the payload is refused.
    """
    where = f"{protocol.name} {protocol.version}" if hasattr(protocol, "name") else "the protocol"
    if not isinstance(payload, dict):
        raise ValidationFailed("payload must be a JSON object.", field="payload", path="$", constraint="type",
                               expected="object")
    validator = _compiled(_CacheKey(protocol))
    limit = settings.BROKER["MAX_VALIDATION_STEPS"]
    token = _budget.set(_Budget(limit))
    try:
        error = best_match(validator.iter_errors(payload))
    except Unresolvable as exc:
        raise ValidationFailed(f"The schema of {where} has a $ref the broker cannot resolve.", field="payload",
                               constraint="$ref", ref=_short(str(getattr(exc, "ref", exc)))) from None
    except PatternRefused as exc:  # registered before patterns were checked at registration
        raise ValidationFailed(f"The schema of {where} has a pattern the broker cannot run ({exc}).",
                               field="payload", constraint="pattern", reason=str(exc)) from None
    except _OverBudget:
        raise ValidationFailed(
            f"Checking this payload against {where} takes more than {limit} schema steps; send a smaller or "
            "simpler payload.", field="payload", constraint="validation_steps", limit=limit) from None
    except RecursionError:
        raise ValidationFailed("payload is nested too deeply to validate.", field="payload",
                               constraint="depth") from None
    finally:
        _budget.reset(token)
    if error is not None:
        raise ValidationFailed(
            f"payload does not match {where}: at {error.json_path}, {_short(error.message)}",
            field="payload", path=error.json_path, constraint=error.validator, reason=_short(error.message),
            protocol={"name": getattr(protocol, "name", None), "version": getattr(protocol, "version", None)})
