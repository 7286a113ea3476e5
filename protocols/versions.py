"""Protocol names, semantic versions and version ranges, as every face and app accepts them.

A leaf: sessions declare protocols by these names and versions too (sessions_app.capabilities).

Registration takes plain `MAJOR.MINOR.PATCH`: a prerelease or build suffix would make
"the highest common version" ambiguous between sessions, so it is refused.
A range is comma-separated comparisons that must all hold: `>=1.0.0,<2.0.0`.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

import semver

from broker_site.errors import ValidationFailed

PROTOCOL_NAME_PATTERN = r"^[a-z][a-z0-9_]*[a-z0-9]$"
MAX_PROTOCOL_NAME = 100
_PROTOCOL_NAME = re.compile(PROTOCOL_NAME_PATTERN)
VERSION_FORMAT = "MAJOR.MINOR.PATCH, e.g. 1.2.0"
RANGE_FORMAT = "comma-separated comparisons (>=, <=, >, <, ==, !=) with MAJOR.MINOR.PATCH versions, e.g. >=1.0.0,<2.0.0"
# Components are stored in PositiveIntegerField columns; keep them well inside that range.
MAX_COMPONENT = 999_999_999
MAX_RANGE_LENGTH = 200
MAX_RANGE_PARTS = 10
_COMPARISON = re.compile(r"^\s*(>=|<=|==|!=|>|<)?\s*([^\s<>=!]+)\s*$")
_OPERATORS: dict[str, Callable[[int], bool]] = {
    ">=": lambda c: c >= 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    "<": lambda c: c < 0,
    "==": lambda c: c == 0,
    "!=": lambda c: c != 0,
}


def is_protocol_name(value: object) -> bool:
    """snake_case: a lowercase letter, then lowercase letters, digits or underscores, not ending in one; ≤ 100."""
    return isinstance(value, str) and len(value) <= MAX_PROTOCOL_NAME and bool(_PROTOCOL_NAME.match(value))


def parse_version(value: object, *, field: str = "version") -> semver.Version:
    """A plain MAJOR.MINOR.PATCH version, or ValidationFailed naming `field`."""
    if not isinstance(value, str) or len(value) > 32:
        raise ValidationFailed(f"{field} must be a semantic version string ({VERSION_FORMAT}).",
                               field=field, constraint=VERSION_FORMAT)
    try:
        version = semver.Version.parse(value)
    except (ValueError, TypeError):
        raise ValidationFailed(f"{field} {value!r} is not a semantic version ({VERSION_FORMAT}).",
                               field=field, constraint=VERSION_FORMAT, value=value) from None
    if version.prerelease or version.build:
        raise ValidationFailed(f"{field} {value!r} has a prerelease or build suffix; use plain {VERSION_FORMAT}.",
                               field=field, constraint=VERSION_FORMAT, value=value)
    if max(version.major, version.minor, version.patch) > MAX_COMPONENT:
        raise ValidationFailed(f"{field} {value!r} has a component above {MAX_COMPONENT}.",
                               field=field, constraint=VERSION_FORMAT, value=value)
    return version


def version_key(value: str) -> tuple[int, int, int]:
    """Sort key for a version already known to be valid (stored or declared at connect)."""
    version = semver.Version.parse(value)
    return (version.major, version.minor, version.patch)


def next_versions(highest: str) -> list[str]:
    """What to register instead of a taken version: next patch, minor and major of the highest one."""
    version = semver.Version.parse(highest)
    return [str(version.bump_patch()), str(version.bump_minor()), str(version.bump_major())]


@dataclass(frozen=True)
class VersionRange:
    """A parsed range; call it with a version string to test membership."""

    text: str
    clauses: tuple[tuple[str, semver.Version], ...]

    def __call__(self, version: str) -> bool:
        try:
            candidate = semver.Version.parse(version)
        except (ValueError, TypeError):
            return False
        return all(_OPERATORS[op](candidate.compare(bound)) for op, bound in self.clauses)


def parse_range(value: object, *, field: str = "version_range") -> VersionRange:
    """`>=1.0.0,<2.0.0` into a predicate; a bare version means `==`."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_RANGE_LENGTH:
        raise ValidationFailed(f"{field} must be a non-empty string of at most {MAX_RANGE_LENGTH} characters.",
                               field=field, constraint=RANGE_FORMAT)
    parts = value.split(",")
    if len(parts) > MAX_RANGE_PARTS:
        raise ValidationFailed(f"{field} has more than {MAX_RANGE_PARTS} comparisons.",
                               field=field, constraint=RANGE_FORMAT, limit=MAX_RANGE_PARTS)
    clauses = []
    for part in parts:
        match = _COMPARISON.match(part)
        if match is None:
            raise ValidationFailed(f"{field} part {part.strip()!r} is not a comparison ({RANGE_FORMAT}).",
                                   field=field, constraint=RANGE_FORMAT, value=value)
        operator, raw_version = match.group(1) or "==", match.group(2)
        try:
            bound = parse_version(raw_version, field=field)
        except ValidationFailed:
            raise ValidationFailed(f"{field} part {part.strip()!r} does not compare with a MAJOR.MINOR.PATCH version.",
                                   field=field, constraint=RANGE_FORMAT, value=value) from None
        clauses.append((operator, bound))
    return VersionRange(text=value, clauses=tuple(clauses))
