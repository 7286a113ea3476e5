"""What a session declares it can do, checked at connect: protocol names and versions as protocols accept them."""

import re
from typing import Any

from broker_site.errors import ValidationFailed
from protocols.versions import PROTOCOL_NAME_PATTERN, is_protocol_name, parse_version, version_key

FEATURE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
MAX_PROTOCOLS = 100
MAX_VERSIONS = 50
MAX_FEATURES = 100


def clean_capabilities(raw: Any) -> tuple[dict[str, list[str]], list[str]]:
    """Validate {supported_protocols: {name: [versions]}, supported_features: [...]}; return them cleaned."""
    if raw is None:
        return {}, []
    if not isinstance(raw, dict):
        raise ValidationFailed("capabilities must be an object.", field="capabilities")
    unknown = sorted(set(raw) - {"supported_protocols", "supported_features"})
    if unknown:
        raise ValidationFailed("capabilities has unknown fields.", field="capabilities", unknown=unknown)
    protocols = raw.get("supported_protocols") or {}
    features = raw.get("supported_features") or []
    if not isinstance(protocols, dict):
        raise ValidationFailed("supported_protocols must map protocol names to lists of versions.",
                               field="capabilities.supported_protocols")
    if len(protocols) > MAX_PROTOCOLS:
        raise ValidationFailed(f"At most {MAX_PROTOCOLS} protocols.", field="capabilities.supported_protocols",
                               limit=MAX_PROTOCOLS)
    cleaned: dict[str, list[str]] = {}
    for name, versions in protocols.items():
        where = f"capabilities.supported_protocols.{str(name)[:64]}"
        if not is_protocol_name(name):
            raise ValidationFailed("Protocol names are snake_case.", field=where, constraint=PROTOCOL_NAME_PATTERN)
        if isinstance(versions, str):
            versions = [versions]
        if not isinstance(versions, list) or not versions or len(versions) > MAX_VERSIONS:
            raise ValidationFailed(f"Each protocol lists 1 to {MAX_VERSIONS} versions.", field=where)
        for version in versions:
            parse_version(version, field=where)
        cleaned[name] = sorted(set(versions), key=version_key)
    if not isinstance(features, list) or len(features) > MAX_FEATURES:
        raise ValidationFailed(f"supported_features is a list of at most {MAX_FEATURES} names.",
                               field="capabilities.supported_features")
    for feature in features:
        if not isinstance(feature, str) or not FEATURE.match(feature):
            raise ValidationFailed("Feature names are 1-64 letters, digits, and _ . : -",
                                   field="capabilities.supported_features", value=str(feature)[:64])
    return cleaned, sorted(set(features))
