"""The hot path's JSON (broker_site.jsoncodec): orjson's speed, json's answers, for what orjson reads or writes
differently (integers past 64 bits, what it refuses, datetimes)."""

import json
from datetime import UTC, datetime

import pytest

from broker_site.jsonbounds import json_parsed
from broker_site.jsoncodec import json_loads, json_size, json_text

BIG = 2**70 + 1  # a float would round it to 2**70


def strict(constant: str):
    raise ValueError(constant)


@pytest.mark.parametrize("text", [
    f'{{"n": {BIG}}}', f"[-{BIG}]", '{"s": "12345678901234567890"}', '{"a": 1, "a": 2}', '"\\ud800"',
    '{"t": "\\u00e9\\u2028"}', "[1e400]", "0.1",
])
def test_reads_what_json_reads(text):
    read = json_loads(text, strict)
    assert read == json.loads(text) and type(read) is type(json.loads(text))
    assert json_loads(text.encode(), strict) == read


def test_an_integer_past_64_bits_stays_exact_through_the_parser():
    assert json_parsed(f'{{"n": {BIG}}}')["n"] == BIG


@pytest.mark.parametrize("text", ["[NaN]", "{bad", "[1,]", '"\\x"'])
def test_refuses_what_json_refuses(text):
    with pytest.raises(ValueError):
        json_loads(text, strict)


@pytest.mark.parametrize("value", [{"n": BIG}, {"text": "é\u2028\x1f", "list": [1, None, True]}, [-(2**63)], 2**64])
def test_writes_what_json_writes(value):
    assert json_text(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert json_size(value) == len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def test_datetimes_go_to_the_default_as_they_did():
    at = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)
    assert json_text({"at": at}, default=str) == json.dumps({"at": at}, separators=(",", ":"), default=str)
    with pytest.raises(TypeError):
        json_text({"at": at})
