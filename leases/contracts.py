"""What a client hands over to lease, release and list file leases: one contract per operation, on every face."""

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from broker_site.contracts import Contract

MAX_PATHS = 50


def _plain(path: str) -> str:
    """A repository path as agents write it: `./src/a.py` and `src/a.py` are one path."""
    while path.startswith("./"):
        path = path[2:]
    if not path or "\x00" in path:
        raise ValueError("a path must be non-empty text")
    return path


Path = Annotated[str, StringConstraints(min_length=1, max_length=300), AfterValidator(_plain)]
Workspace = Annotated[str, StringConstraints(max_length=64)]


class LeaseIn(Contract):
    paths: list[Path] = Field(min_length=1, max_length=MAX_PATHS, description="globs")
    mode: Literal["exclusive", "shared"] = "exclusive"
    ttl_seconds: int = Field(1800, ge=5, le=86_400)
    reason: str = Field("", max_length=200)
    workspace: Workspace = ""


class ReleaseIn(Contract):
    paths: list[Path] | None = Field(None, max_length=MAX_PATHS, description="default: all yours")
    workspace: Workspace = ""


class LeaseListIn(Contract):
    path: Path | None = Field(None, description="only leases overlapping this path")
    workspace: Workspace | None = Field(None, description="default: every workspace")
    except_session: str | None = Field(None, max_length=100, description="not this session's (id or name)")
