"""API key format: {project_id}_{key_id}_{secret}. Only a digest is ever stored."""

import hashlib
import re
import secrets
import string
from typing import NamedTuple

from projects.models import KEY_ID_PATTERN, PROJECT_ID_PATTERN

# Letters and digits only: URL-safe, and no underscore to blur where the secret starts.
_SECRET_ALPHABET = string.ascii_letters + string.digits
SECRET_LENGTH = 40
_PROJECT_ID = re.compile(PROJECT_ID_PATTERN)
_KEY_ID = re.compile(KEY_ID_PATTERN)
_SECRET = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
MAX_KEY_LENGTH = 64 + 1 + 32 + 1 + 128


class ParsedKey(NamedTuple):
    project_id: str
    key_id: str
    raw: str


def parse_key(raw: str) -> ParsedKey | None:
    """Split on the first two underscores; None when any part is malformed."""
    if not raw or len(raw) > MAX_KEY_LENGTH:
        return None
    parts = raw.split("_", 2)
    if len(parts) != 3:
        return None
    project_id, key_id, secret = parts
    if not (_PROJECT_ID.match(project_id) and _KEY_ID.match(key_id) and _SECRET.match(secret)):
        return None
    return ParsedKey(project_id, key_id, raw)


def new_key_id() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def new_secret(length: int = SECRET_LENGTH) -> str:
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(length))


def compose_key(project_id: str, key_id: str) -> str:
    return f"{project_id}_{key_id}_{new_secret()}"


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()
