"""JSON on the hot path of every face, through orjson (C-speed, several times json's), with json's exact answers.

Written: WebSocket frames, MCP tool results, REST responses (broker_site.renderers), payload and
schema sizes. orjson writes what json.dumps(separators=(",", ":"), ensure_ascii=False) writes,
except for an exponent's spelling (1.5e-7, not 1.5e-07); datetimes go to `default` as they did
with json. It refuses integers past 64 bits, which a client may send and json reads exactly: such
a value is written by json instead, so nothing a client sent is altered.

Read (broker_site.jsonbounds.json_parsed, for every face): orjson first. It would read an
integer past 64 bits as a float, so text with a run of 19 or more digits goes to json instead;
anything orjson refuses (invalid JSON, NaN, a lone surrogate, nesting past its 1,024 levels) is
read again by json, whose answer (a value, ValueError or RecursionError) the caller words as
before. So json decides every edge case, and orjson only makes the common case fast.
"""

import json
import re
from collections.abc import Callable
from typing import Any

import orjson

_LONG_NUMBER = re.compile(r"\d{19}")
_LONG_NUMBER_BYTES = re.compile(rb"\d{19}")


def json_bytes(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """Compact UTF-8 JSON; `default` names what to write for a value JSON has no type for (as json's)."""
    try:
        return orjson.dumps(value, default=default, option=orjson.OPT_PASSTHROUGH_DATETIME)
    except TypeError:  # an integer past 64 bits (or a type `default` does not know: json says which)
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=default).encode()


def json_text(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """`json_bytes` as text (what a WebSocket text frame and an MCP text content carry)."""
    return json_bytes(value, default).decode()


def json_size(value: Any) -> int:
    """How many bytes `value` takes as compact UTF-8 JSON (what payload and schema limits count)."""
    return len(json_bytes(value))


def json_loads(raw: str | bytes, parse_constant: Callable[[str], Any]) -> Any:
    """The JSON value in `raw`; json.loads(raw, parse_constant=...)'s answer, faster for the common case."""
    long_number = (_LONG_NUMBER if isinstance(raw, str) else _LONG_NUMBER_BYTES).search(raw)
    if long_number is None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # json says what exactly is wrong (or reads what orjson would not)
    return json.loads(raw, parse_constant=parse_constant)

