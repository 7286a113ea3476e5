"""Which file leases are held now in a project, and (for a git hook) whether given paths are leased by another session.

Prints the leases as JSON, in the shape the REST and MCP faces answer with, leaving out
--except-session's (the committer's own). With paths, it exits 1 when any lease is left, so
`broker_leases PROJECT $(git diff --cached --name-only)` can stop a commit on the broker's host;
contrib/pre-commit-leases asks the same over REST from anywhere.
"""

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from broker_site.contracts import parsed
from broker_site.errors import BrokerError
from leases.contracts import LeaseListIn
from leases.selectors import leases_listed
from projects.management.cli import as_command_error
from projects.models import Project


class Command(BaseCommand):
    help = "List file leases held in a project; with paths, exit 1 if another session leases any of them."

    def add_arguments(self, parser) -> None:
        parser.add_argument("project")
        parser.add_argument("paths", nargs="*", help="paths to check (none: list every lease)")
        parser.add_argument("--workspace", help="one workspace (default: all)")
        parser.add_argument("--except-session", default="", help="a session name or id whose leases do not count")

    def handle(self, *args, project: str, paths: list[str], workspace: str | None, except_session: str,
               **options) -> None:
        found = Project.objects.filter(pk=project).first()
        if found is None:
            raise CommandError(f"No project {project!r}.")
        base = {"workspace": workspace, "except_session": except_session or None}
        try:
            asked = [parsed(LeaseListIn, {**base, "path": path}, what="path") for path in paths]
            listings = [leases_listed(found, one) for one in asked or [parsed(LeaseListIn, base)]]
        except BrokerError as exc:
            raise as_command_error(exc) from None
        leases = list({lease["lease_id"]: lease for listing in listings for lease in listing["leases"]}.values())
        self.stdout.write(json.dumps({"leases": leases, "count": len(leases)}, indent=2))
        if paths and leases:
            self.stderr.write(f"{len(leases)} leases on these paths are held by another session.")
            sys.exit(1)
