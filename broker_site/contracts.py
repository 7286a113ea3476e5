"""The base of every operation's input contract, and the one way a face checks input against it.

Each operation's contract is a pydantic model beside its service (`contracts.py` in each app):
the MCP tool takes it as its argument model, the WebSocket frame validates through it, the
REST view parses its body with it, and the OpenAPI and MCP schemas are generated from it.
Contracts say what a JSON Schema can say (fields, types, lengths, ranges, choices); the
services keep the rules that need the database or the project's settings.

Strict: JSON has real numbers and booleans, so "5" is not an integer here on any face. Unknown
fields are refused, so a typo is an error rather than silently ignored.
"""

import uuid
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Strict, ValidationError

from broker_site.errors import ValidationFailed

C = TypeVar("C", bound=BaseModel)
# Types that are text on the wire: strict contracts still take them from JSON strings.
Moment = Annotated[datetime, Strict(False)]  # ISO 8601
Uuid = Annotated[uuid.UUID, Strict(False)]
# Pydantic's words where they would name our classes or say less than they could.
PLAIN = {"extra_forbidden": "unknown field", "model_type": "must be a JSON object",
         "model_attributes_type": "must be a JSON object", "dict_type": "must be a JSON object"}


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


def parsed(contract: type[C], data: Any, *, what: str = "request", strict: bool = True) -> C:
    """`data` as `contract`, or one ValidationFailed naming every field and its problem.

    `strict=False` is for query strings, where every value arrives as text.
    """
    try:
        # strict=None keeps each field's own strictness (a timestamp is text on the wire).
        return contract.model_validate(data, strict=None if strict else False)
    except ValidationError as exc:
        raise contract_error(exc, what) from None


def contract_error(exc: ValidationError, what: str) -> ValidationFailed:
    """Pydantic's errors as {field: [problem]}: what to change, never the rejected values."""
    fields: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        field = ".".join(str(part) for part in error["loc"]) or "$"  # $: the whole input, as in a JSON path
        problem = PLAIN.get(error["type"], error["msg"])
        fields.setdefault(field, []).append(problem)
    first = next(iter(fields))
    return ValidationFailed(f"Invalid {what}: {first}: {fields[first][0]}.", field=first, fields=fields)
