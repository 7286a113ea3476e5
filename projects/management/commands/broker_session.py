"""Make named sessions from the command line, for clients that configure their identity once."""

import json

from django.core.management.base import BaseCommand, CommandError

from broker_site.errors import BrokerError
from projects.auth import CLI
from projects.management.cli import as_command_error, session_lines
from projects.models import Project
from sessions_app.services import session_provision

MAX_CAPABILITIES_CHARS = 100_000


class Command(BaseCommand):
    help = "Manage sessions: create (a named session whose token a client configures as X-Session-Token)."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Make a named session and print its token (once).")
        create.add_argument("--project", required=True)
        create.add_argument("--name", required=True, help="unique in the project, e.g. frontend")
        create.add_argument("--capabilities", help='JSON: {"supported_protocols": {"name": ["1.0.0"]}, '
                                                   '"supported_features": ["..."]}')
        create.add_argument("--url", help="The broker's public base URL for the printed lines.")

    def handle(self, *args, action: str, project: str, **options) -> None:
        target = Project.objects.filter(pk=project).first()
        if target is None:
            raise CommandError(f"No project {project!r}.")
        capabilities = _capabilities(options["capabilities"])
        try:
            connected = session_provision(target, name=options["name"], capabilities=capabilities, caller=CLI)
        except BrokerError as exc:
            raise as_command_error(exc) from None
        session = connected.session
        lines = [
            f"Created session '{session.name}' ({session.pk}) in project '{target.pk}'. Its token (shown once):",
            f"  {connected.token}",
            "",
            "It shows as disconnected until its agent's first call, which brings it back (no connect_session",
            "needed, and after any time away: a session made here is never purged).",
            "",
            *session_lines(connected.token, options["url"]),
        ]
        self.stdout.write("\n".join(lines))


def _capabilities(text: str | None) -> dict | None:
    if text is None:
        return None
    if len(text) > MAX_CAPABILITIES_CHARS:
        raise CommandError(f"--capabilities is longer than {MAX_CAPABILITIES_CHARS} characters.")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"--capabilities is not JSON: {exc}.") from None
    if not isinstance(value, dict):
        raise CommandError("--capabilities is a JSON object.")
    return value
