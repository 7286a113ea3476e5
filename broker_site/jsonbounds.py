"""The one rule for what JSON a client may send, used wherever a face parses input: how deeply it
may nest, and no NUL character in any string.

REST bodies (BoundedJSONParser, DRF's parser here), WebSocket frames (routing.frames) and MCP
requests (broker_site.mcp.auth) all go through `json_parsed` (or `json_text_check`). Past about a thousand levels
Python's json raises RecursionError (a 500 or an internal_error, before this existed), and
anything deep that does parse makes every later recursive step (pydantic, jsonschema, json.dumps
of the stored payload) pay for it; no message an agent sends needs more than a few dozen levels.
The depth counts every object and array, the envelope included: `{"payload": {}}` is 2 deep.

NUL (U+0000) is valid JSON, but PostgreSQL stores it neither in text nor in jsonb: a payload or
a name carrying one would be accepted on SQLite and fail at the database on PostgreSQL (a 500).
So it is refused on every face and every stack alike.
"""

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from broker_site.errors import PayloadTooLarge, ValidationFailed
from broker_site.jsoncodec import json_loads


def json_too_deep(limit: int | None = None) -> ValidationFailed:
    limit = settings.BROKER["MAX_JSON_DEPTH"] if limit is None else limit
    return ValidationFailed(f"The JSON is nested more than {limit} levels deep.", field="$",
                            constraint="max_depth", limit=limit)


def json_parsed(raw: str | bytes) -> Any:
    """The JSON value in `raw`, refused with validation_error if it nests deeper than MAX_JSON_DEPTH.

    Invalid JSON raises ValueError as json.loads does, for each face to word as it words it; so do
    NaN and Infinity, which are not JSON (and which PostgreSQL's jsonb would refuse later). Read
    by orjson where it gives json's answer (broker_site.jsoncodec).
    """
    try:
        value = json_loads(raw, parse_constant=_not_json)
    except RecursionError:
        raise json_too_deep() from None
    json_depth_check(value, raw)
    if _may_hold_nul(raw):
        nul_check(value)
    return value


def json_body(request) -> Any:
    """A plain Django view's JSON body (`{}` if empty), as `json_parsed` reads it, its faults in the SPEC shape:
    too large (payload_too_large), not JSON (validation_error)."""
    try:
        return json_parsed(request.body or b"{}")
    except RequestDataTooBig:
        raise PayloadTooLarge("The request body is too large.") from None
    except ValueError:
        raise ValidationFailed("The request body is not valid JSON.") from None


def json_text_check(raw: str | bytes) -> None:
    """Check `raw`'s nesting for a face whose own parser reads it next (MCP): parsed here only if it
    has more brackets than the limit. Invalid JSON raises ValueError."""
    if _openings(raw) > settings.BROKER["MAX_JSON_DEPTH"] or _may_hold_nul(raw):
        json_parsed(raw)


def json_depth_check(value: Any, raw: str | bytes | None = None) -> None:
    """Refuse `value` (already parsed, from `raw` if given) if its objects and arrays nest deeper than the limit."""
    limit = settings.BROKER["MAX_JSON_DEPTH"]
    if raw is not None and _openings(raw) <= limit:
        return  # cannot nest deeper than it has brackets: most bodies stop here, at C speed
    # Iterative, so that checking depth can never itself run out of stack.
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise json_too_deep(limit)
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))


def nul_check(value: Any, field: str = "$") -> None:
    """Refuse `value` if any string in it (object keys too) holds a NUL character."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                raise ValidationFailed("Text may not contain the NUL character (U+0000).", field=field,
                                       constraint="no_nul")
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _may_hold_nul(raw: str | bytes) -> bool:
    # JSON can carry NUL only as an escape (a raw control character is invalid); a C-speed scan
    # spares the walk for the bodies that cannot hold one.
    return ("\\u0000" in raw) if isinstance(raw, str) else (b"\\u0000" in raw)


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def _openings(raw: str | bytes) -> int:
    if isinstance(raw, str):
        return raw.count("[") + raw.count("{")
    return raw.count(b"[") + raw.count(b"{")


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser (REST_FRAMEWORK's DEFAULT_PARSER_CLASSES) under the rule: too deep is a validation_error.

    Here rather than with the REST views: DRF imports its parsers while its views module loads.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json_parsed(stream.read().decode(encoding))
        except ValueError as exc:  # not JSON, or not in that encoding: DRF's own parse error, mapped once
            raise ParseError(f"JSON parse error - {exc}") from None
