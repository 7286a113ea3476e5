"""The one rule on JSON nesting (broker_site.jsonbounds): every object and array counts, strings do not."""

import json

import pytest

from broker_site.errors import ValidationFailed
from broker_site.jsonbounds import json_parsed, json_text_check

LIMIT = 64


def nested_text(depth: int) -> str:
    return '{"a":' * (depth - 1) + "[]" + "}" * (depth - 1)


def test_json_as_deep_as_the_limit_is_taken():
    assert json_parsed(nested_text(LIMIT)) == json.loads(nested_text(LIMIT))


@pytest.mark.parametrize("depth", [LIMIT + 1, 10_000])
def test_json_deeper_than_the_limit_is_a_validation_error(depth):
    with pytest.raises(ValidationFailed) as refused:
        json_parsed(nested_text(depth))
    assert refused.value.details == {"field": "$", "constraint": "max_depth", "limit": LIMIT}


def test_brackets_inside_strings_do_not_count():
    text = json.dumps({"text": "[" * 1000 + "{" * 1000, "list": [[1, 2], [3]] * 100})
    assert json_parsed(text)["list"][0] == [1, 2]
    json_text_check(text.encode())


def test_bytes_are_checked_like_text():
    with pytest.raises(ValidationFailed):
        json_text_check(("[" * 100 + "]" * 100).encode())


@pytest.mark.parametrize("text", ['{"a": NaN}', "[Infinity]", "-Infinity", "{not json"])
def test_what_is_not_json_is_a_value_error(text):
    with pytest.raises(ValueError):
        json_parsed(text)
