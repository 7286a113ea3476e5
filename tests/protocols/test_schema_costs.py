"""What a schema may make the broker do: linear-time patterns, linear uniqueItems, resolvable refs, a bounded budget.

The live versions (a second client answered meanwhile) are in tests/websocket/test_hostile_schemas.py.
"""

import uuid
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.test import override_settings

from broker_site.errors import ValidationFailed
from projects.auth import CLI
from protocols.schemas import payload_validate, schema_check
from protocols.services import protocol_register
from protocols.transform import built_in_adapt

EVIL = "^(a+)+$"


def protocol(schema: dict) -> SimpleNamespace:
    return SimpleNamespace(id=uuid.uuid4(), name="p", version="1.0.0", schema=schema)


def refusal(schema: dict) -> dict:
    with pytest.raises(ValidationFailed) as refused:
        schema_check(schema)
    return refused.value.details


def test_an_evil_pattern_matches_a_long_input_in_linear_time():
    evil = protocol({"type": "object", "properties": {"s": {"type": "string", "pattern": EVIL}}})
    payload_validate(evil, {"s": "a" * 100_000})
    with pytest.raises(ValidationFailed) as refused:
        payload_validate(evil, {"s": "a" * 100_000 + "!"})
    assert (refused.value.details["constraint"], refused.value.details["path"]) == ("pattern", "$.s")


@pytest.mark.parametrize("schema", [
    {"type": "object", "patternProperties": {EVIL: {"type": "integer"}}, "additionalProperties": False},
    {"type": "object", "propertyNames": {"pattern": EVIL}},
])
def test_pattern_keywords_on_property_names_run_in_linear_time(schema):
    checked = protocol(schema)
    with pytest.raises(ValidationFailed):
        payload_validate(checked, {"a" * 100_000 + "!": 1})


def test_the_built_in_adapter_matches_pattern_properties_in_linear_time():
    schema = {"type": "object", "patternProperties": {EVIL: {}}, "additionalProperties": False}
    assert built_in_adapt(schema, {"a" * 100_000 + "!": 1, "aaa": 2}) == {"aaa": 2}


@pytest.mark.parametrize(("schema", "path", "pattern"), [
    ({"properties": {"s": {"pattern": "^(\\w+)\\1$"}}}, "$.properties.s.pattern", "^(\\w+)\\1$"),
    ({"patternProperties": {"^(?=x)": {}}}, "$.patternProperties['^(?=x)']", "^(?=x)"),
    ({"$defs": {"d": {"prefixItems": [{"pattern": "(?<!a)b"}]}}}, "$['$defs'].d.prefixItems[0].pattern",
     "(?<!a)b"),
])
def test_a_pattern_re2_cannot_run_is_refused_naming_its_path_and_pattern(schema, path, pattern):
    details = refusal(schema)
    assert (details["constraint"], details["path"], details["pattern"]) == ("pattern", path, pattern)


def test_ecma_unicode_escapes_and_data_that_looks_like_a_pattern_are_accepted():
    schema_check({"properties": {"s": {"pattern": "^[\\u0041-\\u005A]+$"}}, "enum": [{"pattern": "(?=x)"}]})
    upper = protocol({"properties": {"s": {"pattern": "^[\\u0041-\\u005A]+$"}}})
    payload_validate(upper, {"s": "ABC"})
    with pytest.raises(ValidationFailed):
        payload_validate(upper, {"s": "abc"})


def test_unevaluated_properties_beside_pattern_properties_is_refused():
    details = refusal({"patternProperties": {"^x": {}}, "unevaluatedProperties": False})
    assert details["constraint"] == "unevaluatedProperties"


def test_unique_items_of_thousands_of_objects_is_linear_and_uses_json_equality():
    unique = protocol({"type": "object", "properties": {"rows": {"type": "array", "uniqueItems": True}}})
    payload_validate(unique, {"rows": [{"id": i, "tags": ["x", i]} for i in range(100_000)]})
    payload_validate(unique, {"rows": [True, 1, False, 0, None, "1", [1], {"1": 1}]})
    for equal in ([1, 1.0], [{"a": 1, "b": [2]}, {"b": [2.0], "a": 1}], [[{"x": None}], [{"x": None}]]):
        with pytest.raises(ValidationFailed) as refused:
            payload_validate(unique, {"rows": ["first", *equal]})
        assert refused.value.details["constraint"] == "uniqueItems"
        assert "items 1 and 2 are equal" in refused.value.message


def test_unevaluated_properties_over_many_keys_is_linear():
    closed = protocol({"type": "object", "properties": {"a": {}}, "unevaluatedProperties": False})
    with pytest.raises(ValidationFailed) as refused:
        payload_validate(closed, {"a": 1, **{f"k{i}": i for i in range(50_000)}})
    assert refused.value.details["constraint"] == "unevaluatedProperties"
    payload_validate(protocol({"type": "object", "additionalProperties": True, "unevaluatedProperties": False}),
                     {f"k{i}": i for i in range(50_000)})


@override_settings(BROKER={**settings.BROKER, "MAX_VALIDATION_STEPS": 5000})
def test_exponential_schemas_are_cut_off_by_the_step_budget():
    # Each level tries both branches of the anyOf, so the work doubles with the payload's depth.
    branching = protocol({"$defs": {"n": {"type": "object", "properties": {
        "c": {"anyOf": [{"$ref": "#/$defs/n"}, {"$ref": "#/$defs/n"}]}}}}, "$ref": "#/$defs/n"})
    nested: object = False
    for _ in range(40):
        nested = {"c": nested}
    with pytest.raises(ValidationFailed) as refused:
        payload_validate(branching, nested)
    assert refused.value.details == {"field": "payload", "constraint": "validation_steps", "limit": 5000}


@pytest.mark.parametrize(("schema", "path", "ref"), [
    ({"properties": {"a": {"$ref": "#/$defs/missing"}}}, "$.properties.a['$ref']", "#/$defs/missing"),
    ({"$ref": "#nowhere"}, "$['$ref']", "#nowhere"),
    ({"$ref": "other.json"}, "$['$ref']", "other.json"),
    ({"$id": "https://example.com/a", "items": {"$ref": "b.json"}}, "$.items['$ref']", "b.json"),
])
def test_a_ref_that_does_not_resolve_is_refused_naming_its_path(schema, path, ref):
    details = refusal(schema)
    assert (details["constraint"], details["path"], details["ref"]) == ("$ref", path, ref)


def test_an_id_or_ref_that_is_no_uri_is_refused_not_a_server_error():
    assert refusal({"$id": "http://[::1"})["constraint"] == "$id"
    assert refusal({"$ref": "http://[::1"})["constraint"] == "$ref"


@pytest.mark.parametrize("schema", [
    {"$defs": {"a": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/a"}}},
    {"$defs": {"a": {"$anchor": "name", "type": "string"}}, "properties": {"a": {"$ref": "#name"}}},
    {"$id": "https://example.com/root", "$defs": {"b": {"$id": "b.json", "type": "string"}},
     "properties": {"a": {"$ref": "b.json"}}},
    {"$ref": "https://json-schema.org/draft/2020-12/schema"},
    {"$schema": "http://json-schema.org/draft-07/schema#", "definitions": {"a": {}}, "items": {"$ref": "#/definitions/a"}},
    {"properties": {"self": {"$ref": "#"}}},
])
def test_local_and_metaschema_refs_are_accepted(schema):
    schema_check(schema)


def test_registration_refuses_an_unresolvable_ref_before_storing_it(alpha):
    with pytest.raises(ValidationFailed):
        protocol_register(alpha.project, CLI, name="refs", version="1.0.0", schema={"$ref": "#/$defs/x"})
    protocol_register(alpha.project, CLI, name="refs", version="1.0.0", schema={"$defs": {"x": {}}, "$ref": "#/$defs/x"})
