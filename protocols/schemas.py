"""Checking protocol schemas at registration, and payloads against them at send.

Validators are compiled once per protocol and cached by the protocol's UUID. That key is
sound because a registered schema never changes (there is no update, only delete and
register again, which mints a new UUID).
"""

import json
from functools import lru_cache
from typing import Any

from django.conf import settings
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from jsonschema_specifications import REGISTRY as METASCHEMAS
from referencing.exceptions import Unresolvable

from broker_site.errors import ValidationFailed

MAX_MESSAGE_CHARS = 500
VALIDATOR_CACHE_SIZE = 1024

# The metaschemas only, and no `retrieve`: jsonschema's default registry would fetch a remote
# `$ref` over HTTP, letting any agent make the broker issue requests to arbitrary URLs.
_REGISTRY = METASCHEMAS


def _short(text: str) -> str:
    # jsonschema messages quote the failing instance, which may be a whole payload.
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


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


def schema_check(schema: Any, *, field: str = "schema") -> None:
    """Refuse anything that is not a valid JSON Schema object within the size limit.

    The error names the JSON path inside the schema and the metaschema constraint it broke.
    """
    if not isinstance(schema, dict):
        raise ValidationFailed(f"{field} must be a JSON object (a JSON Schema).", field=field,
                               path="$", constraint="type", expected="object")
    limit = settings.BROKER["MAX_SCHEMA_BYTES"]
    try:
        size = len(json.dumps(schema, separators=(",", ":")).encode())
    except (TypeError, ValueError):  # only a non-REST caller can hand over something not JSON
        raise ValidationFailed(f"{field} must be plain JSON.", field=field, constraint="json") from None
    if size > limit:
        raise ValidationFailed(f"{field} is {size} bytes serialized; the limit is {limit}.",
                               field=field, constraint="max_bytes", limit=limit, size=size)
    cls = _validator_class(schema, field)
    try:
        cls.check_schema(schema)
    except SchemaError as err:
        raise ValidationFailed(
            f"{field} is not a valid JSON Schema: at {err.json_path}, {_short(err.message)}",
            field=field, path=err.json_path, constraint=err.validator, reason=_short(err.message),
            metaschema_path="/".join(str(p) for p in err.schema_path)) from None
    except RecursionError:
        raise ValidationFailed(f"{field} is nested too deeply.", field=field, constraint="depth") from None


class _CacheKey:
    """Hashes and compares by protocol id only, carrying the schema along to compile on a miss."""

    __slots__ = ("protocol_id", "schema")

    def __init__(self, protocol_id: Any, schema: dict[str, Any]) -> None:
        self.protocol_id = protocol_id
        self.schema = schema

    def __hash__(self) -> int:
        return hash(self.protocol_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _CacheKey) and other.protocol_id == self.protocol_id


@lru_cache(maxsize=VALIDATOR_CACHE_SIZE)
def _compiled(key: _CacheKey) -> Validator:
    cls = _validator_class(key.schema, "schema")
    # Formats are asserted, not just annotated: agents write "format": "uuid" expecting it to hold.
    return cls(key.schema, registry=_REGISTRY, format_checker=cls.FORMAT_CHECKER)


def payload_validate(protocol: Any, payload: Any) -> None:
    """Refuse a payload its protocol's schema rejects, naming the best-matching error.

    `protocol` is anything with `.id` (unique per registration) and `.schema`.
    """
    where = f"{protocol.name} {protocol.version}" if hasattr(protocol, "name") else "the protocol"
    if not isinstance(payload, dict):
        raise ValidationFailed("payload must be a JSON object.", field="payload", path="$", constraint="type",
                               expected="object")
    validator = _compiled(_CacheKey(protocol.id, protocol.schema))
    try:
        error = best_match(validator.iter_errors(payload))
    except Unresolvable as exc:
        raise ValidationFailed(f"The schema of {where} has a $ref the broker cannot resolve.", field="payload",
                               constraint="$ref", ref=_short(str(getattr(exc, "ref", exc)))) from None
    except RecursionError:
        raise ValidationFailed("payload is nested too deeply to validate.", field="payload",
                               constraint="depth") from None
    if error is not None:
        raise ValidationFailed(
            f"payload does not match {where}: at {error.json_path}, {_short(error.message)}",
            field="payload", path=error.json_path, constraint=error.validator, reason=_short(error.message),
            protocol={"name": getattr(protocol, "name", None), "version": getattr(protocol, "version", None)})

